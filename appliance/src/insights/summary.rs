//! The extractive summary: the sentences that carry the meeting, in the order they
//! were said, with their times and speakers.
//!
//! Each sentence of four words or more is weighted by how often the meeting uses its
//! topic words (words that are not stop words, counted over the whole meeting), over
//! the square root of its length so long sentences do not win by length alone;
//! sentences that commit, ask for or decide something weigh more, greetings and
//! thanks much less, questions somewhat less. The best `√n` (at most 15) are kept,
//! skipping any that mostly repeat one already kept.

use super::text::{is_stopword, lang_of, sentences, Lang};
use super::{Moment, Utterance};
use std::collections::{HashMap, HashSet};

const MAX_SENTENCES: usize = 15;

/// Cues that a sentence records an outcome.
const DECIDED: &[&str] = &[
    "decided",
    "agreed",
    "approved",
    "decision",
    "conclusion",
    "will",
    "need",
    "must",
    "should",
    "please",
    "결정",
    "합의",
    "승인",
    "겠습니다",
    "주세요",
    "해야",
];

/// Cues of talk around the meeting, not in it.
const SOCIAL: &[&str] = &[
    "morning",
    "afternoon",
    "thank",
    "thanks",
    "hello",
    "welcome",
    "closed",
    "bye",
    "안녕하세요",
    "감사합니다",
    "마치겠습니다",
    "시작하겠습니다",
];

/// The summary of `said`: its sentences that carry the meeting, in time order.
pub fn extractive(said: &[Utterance]) -> Vec<Moment> {
    struct Candidate<'a> {
        u: &'a Utterance,
        text: String,
        topic: HashSet<String>,
        len: usize,
        question: bool,
    }
    let mut all = vec![];
    for u in said {
        let lang = lang_of(&u.text);
        for s in sentences(&u.text) {
            let topic = s
                .tokens
                .iter()
                .filter(|w| topical(w, lang))
                .cloned()
                .collect();
            all.push(Candidate {
                u,
                len: s.tokens.len(),
                question: s.asked,
                topic,
                text: s.text,
            });
        }
    }
    let mut freq: HashMap<&str, f64> = HashMap::new();
    for c in &all {
        for w in &c.topic {
            *freq.entry(w.as_str()).or_default() += 1.0;
        }
    }
    let scored: Vec<(f64, usize)> = all
        .iter()
        .enumerate()
        .filter(|(_, c)| c.len >= 4)
        .map(|(i, c)| {
            let lower = c.text.to_lowercase();
            let cue = |list: &[&str]| list.iter().any(|k| lower.contains(k));
            let mut score =
                c.topic.iter().map(|w| freq[w.as_str()]).sum::<f64>() / (c.len as f64).sqrt();
            if cue(DECIDED) {
                score *= 1.5;
            }
            if cue(SOCIAL) {
                score *= 0.2;
            }
            if c.question {
                score *= 0.7;
            }
            (score, i)
        })
        .collect();
    let mut ranked = scored;
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let want = ((all.len() as f64).sqrt().ceil() as usize).clamp(1, MAX_SENTENCES);
    let mut kept: Vec<usize> = vec![];
    for (_, i) in ranked {
        if kept.len() == want {
            break;
        }
        let repeats = kept.iter().any(|&k| {
            let (a, b) = (&all[i].topic, &all[k].topic);
            let union = a.union(b).count();
            union > 0 && a.intersection(b).count() * 2 > union
        });
        if !repeats {
            kept.push(i);
        }
    }
    kept.sort_unstable();
    kept.into_iter()
        .map(|i| Moment::of(all[i].u, &all[i].text))
        .collect()
}

fn topical(w: &str, lang: Lang) -> bool {
    match lang {
        Lang::English => w.chars().count() >= 3 && !is_stopword(w),
        Lang::Korean => w.chars().count() >= 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(lines: &[&str]) -> Vec<Utterance> {
        lines
            .iter()
            .enumerate()
            .map(|(i, t)| Utterance {
                seq: i as u64,
                start: i as f64 * 5.0,
                end: i as f64 * 5.0 + 4.0,
                speaker: if i % 2 == 0 { "A" } else { "B" }.into(),
                text: (*t).into(),
            })
            .collect()
    }

    #[test]
    fn the_demo_meeting_is_summed_up_by_its_substance_in_order() {
        let m = said(&[
            "good morning everyone let's start the weekly team meeting",
            "could you share how the new discharge checklist is working",
            "the checklist is now used on both floors and the nurses find it helpful",
            "we still need the pharmacy to review the medication section by friday",
            "i will ask the pharmacy team and send everyone an update tomorrow",
            "please add the holiday staffing plan to next week's agenda",
            "are there any other questions before we finish",
            "thank you all the meeting is closed",
        ]);
        let s = extractive(&m);
        let seqs: Vec<u64> = s.iter().map(|m| m.seq).collect();
        assert_eq!(seqs.len(), 3, "{s:?}");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "in time order: {seqs:?}"
        );
        assert!(seqs.contains(&3) && seqs.contains(&4), "{s:?}");
        assert!(
            !seqs.contains(&0) && !seqs.contains(&7),
            "no greetings: {s:?}"
        );
        // Each with its time and speaker: segment 3 (B, 15 s) leads.
        assert_eq!((s[0].seq, s[0].at, s[0].speaker.as_str()), (3, 15.0, "B"));
    }

    #[test]
    fn a_sentence_that_repeats_one_kept_is_skipped_and_short_ones_never_count() {
        let m = said(&[
            "the budget for radiology is approved for next year",
            "the radiology budget for next year is approved",
            "ok",
            "staffing for the night shift changes in march",
        ]);
        let s = extractive(&m);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s.iter().all(|m| m.seq != 2));
        assert!(s.iter().any(|m| m.seq == 3));
        assert!(extractive(&[]).is_empty());
    }
}
