//! Action items from what was said: commitments ("I will …", "I'm going to …",
//! "…하겠습니다"), obligations ("we need to …", "we need the pharmacy to …",
//! "…해야"), requests ("please …", "can you …", "…해 주세요") and explicit ones
//! ("action item: …"), each with its owner when the words name one (the speaker who
//! committed, the party needed), its due date and the moment; plus the moments the
//! room or the console marked (`action_item` events), joined to what was said there.
//!
//! Conversational turns are left out: meeting-process phrases ("I will start the
//! meeting", "시작하겠습니다"), negations, and requests to talk ("could you tell us
//! how …", "말씀해 주세요").

use super::dates;
use super::text::{find, lang_of, sentences, Lang, Sentence};
use super::{Mark, Utterance};
use chrono::NaiveDate;
use serde::Serialize;

/// One action item, as found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionItem {
    /// Stable while other segments change: `s<segment>-<n>`, or `m<event>` for a
    /// mark with nothing said near it.
    pub id: String,
    pub text: String,
    pub owner: Option<String>,
    /// ISO date.
    pub due: Option<NaiveDate>,
    /// Seconds from the meeting start.
    pub at: f64,
    pub seq: u64,
    pub speaker: String,
    /// `said` (found in the words), `marked` (the room or the console marked it).
    pub source: &'static str,
}

/// The action items of a meeting held on `day`, in the order they were said.
pub fn extract(said: &[Utterance], marks: &[Mark], day: NaiveDate) -> Vec<ActionItem> {
    let mut items = vec![];
    for u in said {
        let lang = lang_of(&u.text);
        let mut n = 0;
        for s in sentences(&u.text) {
            let found = match lang {
                Lang::English => english(&s),
                Lang::Korean => korean(&s),
            };
            let Some((owner, from)) = found else { continue };
            let owner = match owner {
                Owner::Speaker => known(&u.speaker),
                Owner::Named(n) => Some(n),
                Owner::Nobody => None,
            };
            items.push(ActionItem {
                id: format!("s{}-{n}", u.seq),
                text: tidy(&s.words[from..]),
                owner,
                due: dates::due(&s.tokens, lang, day),
                at: u.start,
                seq: u.seq,
                speaker: u.speaker.clone(),
                source: "said",
            });
            n += 1;
        }
    }
    for m in marks {
        // A mark is for what was just said: the last utterance that began before it
        // (within a minute), else the next one.
        let before = said
            .iter()
            .rev()
            .find(|u| u.start <= m.at && m.at - u.start <= 60.0);
        let target = before.or_else(|| said.iter().find(|u| u.start > m.at));
        match target {
            Some(u) => {
                if let Some(item) = items.iter_mut().find(|i| i.seq == u.seq) {
                    item.source = "marked";
                    continue;
                }
                let lang = lang_of(&u.text);
                items.push(ActionItem {
                    id: format!("s{}-m", u.seq),
                    text: tidy(
                        &u.text
                            .split_whitespace()
                            .map(str::to_owned)
                            .collect::<Vec<_>>(),
                    ),
                    owner: None,
                    due: dates::due(&super::text::tokens(&u.text), lang, day),
                    at: u.start,
                    seq: u.seq,
                    speaker: u.speaker.clone(),
                    source: "marked",
                });
            }
            None => items.push(ActionItem {
                id: format!("m{}", m.seq),
                text: "Marked action item".into(),
                owner: None,
                due: None,
                at: m.at,
                seq: 0,
                speaker: "unknown".into(),
                source: "marked",
            }),
        }
    }
    items.sort_by(|a, b| a.at.total_cmp(&b.at).then(a.id.cmp(&b.id)));
    items
}

enum Owner {
    Speaker,
    Named(String),
    Nobody,
}

fn known(speaker: &str) -> Option<String> {
    (!speaker.is_empty() && speaker != "unknown").then(|| speaker.to_owned())
}

/// Verbs that run a meeting, not work after it.
const PROCESS: &[&str] = &[
    "start", "begin", "close", "finish", "wrap", "stop", "end", "continue", "move", "think", "be",
    "not", "never", "just", "try", "see",
];

/// Verbs of talking, in a request that is a question to answer now.
const TALK: &[&str] = &[
    "tell", "say", "explain", "repeat", "hear", "speak", "talk", "describe", "share", "clarify",
    "remind",
];

const WH: &[&str] = &[
    "how", "what", "why", "when", "where", "who", "which", "whether", "if",
];

/// Which rule a sentence matches: the owner and the word the item's text starts at.
fn english(s: &Sentence) -> Option<(Owner, usize)> {
    let t = &s.tokens;
    let after = |p: &[&str]| find(t, p, 0).map(|i| i + p.len());
    // Explicit: "action item: …", "to do: …".
    if let Some(i) = after(&["action", "item"]).or_else(|| after(&["todo"])) {
        return (i < t.len()).then_some((Owner::Nobody, i));
    }
    for p in [
        &["i", "will"][..],
        &["i'll"],
        &["i", "shall"],
        &["i", "am", "going", "to"],
        &["i'm", "going", "to"],
        &["i'm", "gonna"],
        &["let", "me"],
    ] {
        if let Some(i) = after(p) {
            if work(t, i) {
                return Some((Owner::Speaker, i));
            }
        }
    }
    // "we need the pharmacy to review …": the party needed owns it.
    if let Some(need) = t.iter().position(|w| w == "need" || w == "needs") {
        if let Some(to) = (need + 2..t.len().min(need + 5)).find(|&j| t[j] == "to") {
            let party: Vec<&str> = t[need + 1..to]
                .iter()
                .map(String::as_str)
                .filter(|w| !matches!(*w, "the" | "our" | "a" | "an" | "your" | "their"))
                .collect();
            if !party.is_empty() && work(t, to + 1) && !party.contains(&"time") {
                return Some((Owner::Named(party.join(" ")), need + 1));
            }
        }
    }
    for p in [
        &["we", "need", "to"][..],
        &["we", "have", "to"],
        &["we", "must"],
        &["we", "should"],
        &["we", "will"],
        &["we'll"],
        &["someone", "needs", "to"],
        &["somebody", "needs", "to"],
    ] {
        if let Some(i) = after(p) {
            if work(t, i) {
                return Some((Owner::Nobody, i));
            }
        }
    }
    for p in [
        &["can", "you"][..],
        &["could", "you"],
        &["would", "you"],
        &["will", "you"],
        &["please"],
    ] {
        if let Some(mut i) = after(p) {
            if t.get(i).is_some_and(|w| w == "please") {
                i += 1;
            }
            let talk = t.get(i).is_some_and(|w| TALK.contains(&w.as_str()))
                && t[i + 1..].iter().take(3).any(|w| WH.contains(&w.as_str()));
            if work(t, i) && !talk {
                return Some((Owner::Nobody, i));
            }
        }
    }
    None
}

/// Whether the words from `i` are work to do: at least two, not a meeting-process
/// verb or a negation.
fn work(t: &[String], i: usize) -> bool {
    t.len() >= i + 2 && !PROCESS.contains(&t[i].as_str())
}

fn korean(s: &Sentence) -> Option<(Owner, usize)> {
    // Endings are read with the spaces taken out: Vosk's Korean model writes
    // "완료 하 겠습니다" as often as "완료하겠습니다".
    let all: String = s.tokens.concat();
    let tail: String = s.tokens[s.tokens.len().saturating_sub(3)..].concat();
    if s.tokens.len() < 2 || tail.contains('않') || tail.contains('없') {
        return None;
    }
    let process = ["시작", "마치", "마무리", "종료", "끝내", "기록"]
        .iter()
        .any(|p| all.contains(p));
    if ["겠습니다", "할게요", "드릴게요", "겠어요", "하겠다"]
        .iter()
        .any(|e| all.ends_with(e))
    {
        return (!process).then_some((Owner::Speaker, 0));
    }
    if ["주세요", "바랍니다", "주십시오"]
        .iter()
        .any(|e| all.ends_with(e))
    {
        let talk = all.contains("말씀");
        return (!talk && !process).then_some((Owner::Nobody, 0));
    }
    if s.tokens.iter().any(|w| w.ends_with("해야")) {
        return Some((Owner::Nobody, 0));
    }
    None
}

/// The item's text: the words from its start, without trailing punctuation, its
/// first letter capitalised.
fn tidy(words: &[String]) -> String {
    let text = words.join(" ");
    let text = text.trim_end_matches(['.', '?', '!', ',', ';', ':']).trim();
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wed() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).expect("date")
    }

    fn said(lines: &[(&str, &str)]) -> Vec<Utterance> {
        lines
            .iter()
            .enumerate()
            .map(|(i, (speaker, text))| Utterance {
                seq: i as u64,
                start: i as f64 * 5.0,
                end: i as f64 * 5.0 + 4.0,
                speaker: (*speaker).to_owned(),
                text: (*text).to_owned(),
            })
            .collect()
    }

    #[test]
    fn the_demo_meeting_yields_its_three_action_items_and_nothing_else() {
        // As Vosk writes it: lowercase, no punctuation, one utterance a sentence.
        let m = said(&[
            (
                "Speaker 1",
                "good morning everyone let's start the weekly team meeting",
            ),
            (
                "Speaker 2",
                "could you share how the new discharge checklist is working",
            ),
            (
                "Speaker 1",
                "the checklist is now used on both floors and the nurses find it helpful",
            ),
            (
                "Speaker 2",
                "we still need the pharmacy to review the medication section by friday",
            ),
            (
                "Speaker 1",
                "i will ask the pharmacy team and send everyone an update tomorrow",
            ),
            (
                "Speaker 2",
                "please add the holiday staffing plan to next week's agenda",
            ),
            (
                "Speaker 1",
                "are there any other questions before we finish",
            ),
            ("Speaker 2", "thank you all the meeting is closed"),
        ]);
        let items = extract(&m, &[], wed());
        let got: Vec<(&str, Option<&str>, Option<String>)> = items
            .iter()
            .map(|i| {
                (
                    i.text.as_str(),
                    i.owner.as_deref(),
                    i.due.map(|d| d.to_string()),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "The pharmacy to review the medication section by friday",
                    Some("pharmacy"),
                    Some("2026-12-04".to_owned())
                ),
                (
                    "Ask the pharmacy team and send everyone an update tomorrow",
                    Some("Speaker 1"),
                    Some("2026-12-03".to_owned())
                ),
                (
                    "Add the holiday staffing plan to next week's agenda",
                    None,
                    Some("2026-12-07".to_owned())
                ),
            ]
        );
        assert_eq!(items[1].id, "s4-0");
        assert_eq!(items[1].at, 20.0);
    }

    #[test]
    fn whisper_punctuation_splits_sentences_and_keeps_their_case() {
        let m = said(&[(
            "Ann",
            "Thanks, that helps. I'll send the revised budget to finance by Thursday. Any questions?",
        )]);
        let items = extract(&m, &[], wed());
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(
            items[0].text,
            "Send the revised budget to finance by Thursday"
        );
        assert_eq!(items[0].owner.as_deref(), Some("Ann"));
        assert_eq!(
            items[0].due.map(|d| d.to_string()).as_deref(),
            Some("2026-12-03")
        );
    }

    #[test]
    fn meeting_talk_negations_and_unknown_speakers_are_not_items_or_owners() {
        let m = said(&[
            ("A", "i will start the meeting now"),
            ("A", "can you tell us how the audit went"),
            ("A", "i will not"),
            ("unknown", "i will call the supplier"),
            ("A", "we need time to think"),
        ]);
        let items = extract(&m, &[], wed());
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].text, "Call the supplier");
        assert_eq!(items[0].owner, None, "never a guessed owner");
    }

    #[test]
    fn korean_commitments_and_requests_are_found_and_process_talk_is_not() {
        let m = said(&[
            ("A", "안녕하세요 여러분, 주간 회의를 시작하겠습니다."),
            ("A", "지난주 프로젝트 진행 상황을 공유해 주세요."),
            ("B", "이 부분은 기록하지 않겠습니다."),
            ("B", "다음 주까지 테스트를 완료하겠습니다."),
            ("A", "질문이 있으면 말씀해 주세요."),
            ("A", "오늘 회의는 여기서 마치겠습니다."),
        ]);
        let items = extract(&m, &[], wed());
        let got: Vec<(&str, Option<&str>)> = items
            .iter()
            .map(|i| (i.text.as_str(), i.owner.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("지난주 프로젝트 진행 상황을 공유해 주세요", None),
                ("다음 주까지 테스트를 완료하겠습니다", Some("B")),
            ]
        );
        assert_eq!(
            items[1].due.map(|d| d.to_string()).as_deref(),
            Some("2026-12-07")
        );
        // As Vosk writes it, the ending apart.
        let split = said(&[
            ("A", "보고서 를 보내 드리 겠습니다"),
            ("A", "기록 하지 않 겠습니다"),
        ]);
        let items = extract(&split, &[], wed());
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].owner.as_deref(), Some("A"));
    }

    #[test]
    fn a_mark_joins_the_item_said_just_before_or_becomes_one() {
        let m = said(&[
            ("A", "i will book the room"),
            ("B", "the budget is approved for next year"),
        ]);
        let marks = [
            Mark { seq: 1, at: 2.0 },
            Mark { seq: 2, at: 7.0 },
            Mark { seq: 3, at: 500.0 },
        ];
        let items = extract(&m, &marks[..2], wed());
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!((items[0].source, items[0].id.as_str()), ("marked", "s0-0"));
        assert_eq!(
            (items[1].source, items[1].text.as_str()),
            ("marked", "The budget is approved for next year")
        );
        // Long after anything was said: the mark alone, at its moment.
        let items = extract(&[], &marks[2..], wed());
        assert_eq!((items[0].id.as_str(), items[0].at), ("m3", 500.0));
    }
}
