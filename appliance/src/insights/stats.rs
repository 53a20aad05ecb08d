//! A meeting's insights from its stored transcript: speaking time and share per
//! speaker, turns, the longest monologue, questions asked, overlaps between speakers,
//! words per minute, filler words, silence, and keyword trackers' hits.

use super::text::{find, lang_of, sentences, tokens, Lang, Sentence};
use super::{Moment, Utterance};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeakerStats {
    pub speaker: String,
    pub seconds: f64,
    pub share: f64,
    pub words: usize,
    /// Runs of their utterances with nobody else between.
    pub turns: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Monologue {
    pub speaker: String,
    pub start: f64,
    pub end: f64,
    pub seconds: f64,
}

/// Where one speaker started before another stopped (separate microphones show it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlap {
    pub at: f64,
    pub seconds: f64,
    /// Who was speaking, then who started.
    pub speakers: [String; 2],
}

/// A team's keyword tracker: a name and the phrases it counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracker {
    pub name: String,
    pub phrases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackerHits {
    pub name: String,
    pub count: usize,
    pub hits: Vec<Moment>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Insights {
    /// Most speaking time first.
    pub speakers: Vec<SpeakerStats>,
    pub speaking_share: BTreeMap<String, f64>,
    pub longest_monologue: Option<Monologue>,
    pub questions: Vec<Moment>,
    pub question_count: usize,
    pub overlaps: Vec<Overlap>,
    pub words: usize,
    /// Over the time someone was speaking.
    pub words_per_minute: Option<f64>,
    pub filler_words: usize,
    /// Filler words per 100 words.
    pub filler_rate: f64,
    /// The share of the meeting nobody spoke.
    pub silence_share: Option<f64>,
    pub trackers: Vec<TrackerHits>,
    /// Tone per English segment, when the appliance is set to compute it
    /// (`insights.sentiment`); labelled with its method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<super::sentiment::Sentiment>,
}

/// An overlap shorter than this is two turns meeting, not one speaker over another.
const OVERLAP_MIN_S: f64 = 0.25;

/// The insights of `said` (in time order) in a meeting `duration_s` long.
pub fn insights(said: &[Utterance], duration_s: f64, trackers: &[Tracker]) -> Insights {
    let mut by: BTreeMap<&str, SpeakerStats> = BTreeMap::new();
    let mut prev: Option<&str> = None;
    let (mut words, mut fillers) = (0usize, 0usize);
    let mut questions = vec![];
    for u in said {
        let toks = tokens(&u.text);
        words += toks.len();
        fillers += filler_count(&toks);
        let s = by.entry(&u.speaker).or_insert_with(|| SpeakerStats {
            speaker: u.speaker.clone(),
            seconds: 0.0,
            share: 0.0,
            words: 0,
            turns: 0,
        });
        s.seconds += (u.end - u.start).max(0.0);
        s.words += toks.len();
        if prev != Some(u.speaker.as_str()) {
            s.turns += 1;
        }
        prev = Some(&u.speaker);
        let lang = lang_of(&u.text);
        for sentence in sentences(&u.text) {
            if is_question(&sentence, lang) {
                questions.push(Moment::of(u, &sentence.text));
            }
        }
    }
    let spoken: f64 = by.values().map(|s| s.seconds).sum();
    let mut speakers: Vec<SpeakerStats> = by
        .into_values()
        .map(|mut s| {
            s.share = if spoken > 0.0 {
                s.seconds / spoken
            } else {
                0.0
            };
            s
        })
        .collect();
    speakers.sort_by(|a, b| {
        b.seconds
            .total_cmp(&a.seconds)
            .then(a.speaker.cmp(&b.speaker))
    });
    let end = said.iter().map(|u| u.end).fold(duration_s, f64::max);
    Insights {
        speaking_share: speakers
            .iter()
            .map(|s| (s.speaker.clone(), s.share))
            .collect(),
        speakers,
        longest_monologue: longest_monologue(said),
        question_count: questions.len(),
        questions,
        overlaps: overlaps(said),
        words,
        words_per_minute: (spoken > 0.0).then(|| words as f64 / (spoken / 60.0)),
        filler_words: fillers,
        filler_rate: if words > 0 {
            100.0 * fillers as f64 / words as f64
        } else {
            0.0
        },
        silence_share: (end > 0.0).then(|| 1.0 - covered(said) / end),
        trackers: trackers.iter().map(|t| hits(said, t)).collect(),
        sentiment: None,
    }
}

fn longest_monologue(said: &[Utterance]) -> Option<Monologue> {
    let mut best: Option<Monologue> = None;
    let mut run: Option<Monologue> = None;
    for u in said {
        run = match run {
            Some(mut m) if m.speaker == u.speaker => {
                m.end = m.end.max(u.end);
                Some(m)
            }
            _ => Some(Monologue {
                speaker: u.speaker.clone(),
                start: u.start,
                end: u.end,
                seconds: 0.0,
            }),
        };
        if let Some(m) = &mut run {
            m.seconds = m.end - m.start;
            if best.as_ref().is_none_or(|b| m.seconds > b.seconds) {
                best = Some(m.clone());
            }
        }
    }
    best
}

fn overlaps(said: &[Utterance]) -> Vec<Overlap> {
    let mut sorted: Vec<&Utterance> = said.iter().collect();
    sorted.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut out = vec![];
    // The utterance still going that ends last, of each one before.
    let mut open: Option<&Utterance> = None;
    for u in sorted {
        if let Some(o) = open {
            let seconds = o.end.min(u.end) - u.start;
            if o.speaker != u.speaker && seconds >= OVERLAP_MIN_S {
                out.push(Overlap {
                    at: u.start,
                    seconds,
                    speakers: [o.speaker.clone(), u.speaker.clone()],
                });
            }
        }
        if open.is_none_or(|o| u.end > o.end) {
            open = Some(u);
        }
    }
    out
}

/// Seconds covered by at least one utterance.
fn covered(said: &[Utterance]) -> f64 {
    let mut spans: Vec<(f64, f64)> = said.iter().map(|u| (u.start, u.end.max(u.start))).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut total, mut cur): (f64, Option<(f64, f64)>) = (0.0, None);
    for (s, e) in spans {
        cur = match cur {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    total + cur.map_or(0.0, |(s, e)| e - s)
}

fn filler_count(t: &[String]) -> usize {
    const ONE: &[&str] = &[
        "um", "uh", "er", "erm", "ah", "hmm", "mm", "uhm", "음", "어", "에",
    ];
    let single = t.iter().filter(|w| ONE.contains(&w.as_str())).count();
    let pairs = t
        .windows(2)
        .filter(|p| {
            matches!(
                (p[0].as_str(), p[1].as_str()),
                ("you", "know") | ("i", "mean")
            )
        })
        .count();
    single + pairs
}

/// Whether a sentence asks something: the engine's question mark, else (English) an
/// interrogative first word after fillers, (Korean) a question ending.
fn is_question(s: &Sentence, lang: Lang) -> bool {
    if s.asked {
        return true;
    }
    match lang {
        Lang::English => {
            const SKIP: &[&str] = &[
                "so", "and", "okay", "ok", "well", "um", "uh", "but", "then", "now", "also",
            ];
            const ASK: &[&str] = &[
                "what", "why", "how", "when", "where", "who", "which", "whose", "can", "could",
                "would", "will", "should", "shall", "do", "does", "did", "is", "are", "was",
                "were", "have", "has", "any", "isn't", "aren't", "don't", "doesn't", "didn't",
            ];
            s.tokens
                .iter()
                .find(|w| !SKIP.contains(&w.as_str()))
                .is_some_and(|w| ASK.contains(&w.as_str()))
        }
        Lang::Korean => s.tokens.last().is_some_and(|w| {
            [
                "습니까",
                "니까",
                "까요",
                "나요",
                "가요",
                "는지요",
                "을까",
                "ㄹ까",
            ]
            .iter()
            .any(|e| w.ends_with(e))
        }),
    }
}

/// Where `t`'s phrases were said (whole words, any case), one hit per occurrence.
pub fn hits(said: &[Utterance], t: &Tracker) -> TrackerHits {
    let phrases: Vec<Vec<String>> = t
        .phrases
        .iter()
        .map(|p| tokens(p))
        .filter(|p| !p.is_empty())
        .collect();
    let mut found = vec![];
    for u in said {
        let toks = tokens(&u.text);
        for p in &phrases {
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            let mut from = 0;
            while let Some(i) = find(&toks, &p, from) {
                found.push(Moment::of(u, &u.text));
                from = i + 1;
            }
        }
    }
    TrackerHits {
        name: t.name.clone(),
        count: found.len(),
        hits: found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(seq: u64, speaker: &str, start: f64, end: f64, text: &str) -> Utterance {
        Utterance {
            seq,
            start,
            end,
            speaker: speaker.into(),
            text: text.into(),
        }
    }

    #[test]
    fn speaking_time_turns_monologue_and_silence_add_up() {
        let said = [
            u(0, "A", 0.0, 10.0, "we reviewed the plan"),
            u(1, "A", 11.0, 20.0, "and the budget"),
            u(2, "B", 25.0, 30.0, "what about the timeline"),
            u(3, "A", 31.0, 35.0, "next month"),
        ];
        let i = insights(&said, 40.0, &[]);
        assert_eq!(i.speakers[0].speaker, "A");
        assert_eq!(i.speakers[0].seconds, 23.0);
        assert_eq!(i.speakers[0].turns, 2);
        assert_eq!(i.speakers[1].turns, 1);
        assert!((i.speaking_share["A"] - 23.0 / 28.0).abs() < 1e-9);
        assert!((i.speaking_share.values().sum::<f64>() - 1.0).abs() < 1e-9);
        let m = i.longest_monologue.expect("monologue");
        assert_eq!(
            (m.speaker.as_str(), m.start, m.end, m.seconds),
            ("A", 0.0, 20.0, 20.0)
        );
        assert_eq!(i.question_count, 1);
        assert_eq!(i.questions[0].text, "what about the timeline");
        assert_eq!(
            (i.questions[0].at, i.questions[0].speaker.as_str()),
            (25.0, "B")
        );
        // 28 s spoken of 40: 12 s silent.
        assert!((i.silence_share.expect("silence") - 0.3).abs() < 1e-9);
        assert_eq!(i.words, 13);
        assert!((i.words_per_minute.expect("wpm") - 13.0 / (28.0 / 60.0)).abs() < 1e-9);
        assert!(i.overlaps.is_empty());
    }

    #[test]
    fn overlaps_are_where_another_speaker_starts_before_one_stops() {
        let said = [
            u(0, "A", 0.0, 10.0, "one long point about staffing"),
            u(1, "B", 8.0, 12.0, "sorry to cut in"),
            u(2, "A", 11.9, 14.0, "go on"),
            u(3, "A", 13.0, 15.0, "same speaker twice"),
        ];
        let i = insights(&said, 15.0, &[]);
        assert_eq!(i.overlaps.len(), 1, "{:?}", i.overlaps);
        assert_eq!(i.overlaps[0].speakers, ["A".to_owned(), "B".to_owned()]);
        assert_eq!((i.overlaps[0].at, i.overlaps[0].seconds), (8.0, 2.0));
        // Overlapping speech is counted once in the silence.
        assert_eq!(i.silence_share, Some(0.0));
    }

    #[test]
    fn questions_fillers_and_trackers_are_counted_in_both_languages() {
        let said = [
            u(0, "A", 0.0, 5.0, "um so can we um you know ship it"),
            u(
                1,
                "B",
                5.0,
                9.0,
                "We had an adverse event. Was it reported?",
            ),
            u(2, "A", 9.0, 12.0, "질문이 있습니까"),
            u(3, "B", 12.0, 15.0, "another adverse event and a complaint"),
            u(4, "A", 15.0, 18.0, "the events were adverse"),
        ];
        let trackers = [Tracker {
            name: "Safety".into(),
            phrases: vec!["Adverse event".into(), "complaint".into()],
        }];
        let i = insights(&said, 18.0, &trackers);
        let q: Vec<&str> = i.questions.iter().map(|q| q.text.as_str()).collect();
        assert_eq!(
            q,
            [
                "um so can we um you know ship it",
                "Was it reported?",
                "질문이 있습니까"
            ]
        );
        assert_eq!(i.filler_words, 3);
        assert_eq!(i.trackers[0].count, 3, "{:?}", i.trackers);
        assert_eq!(
            i.trackers[0].hits.iter().map(|h| h.seq).collect::<Vec<_>>(),
            [1, 3, 3]
        );
    }

    #[test]
    fn an_empty_meeting_has_no_rates() {
        let i = insights(&[], 0.0, &[]);
        assert_eq!(i.words_per_minute, None);
        assert_eq!(i.silence_share, None);
        assert_eq!(i.longest_monologue, None);
        assert_eq!(i.filler_rate, 0.0);
    }
}
