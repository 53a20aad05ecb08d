//! Sentiment per segment with a lexicon method — VADER (the `vader_sentiment`
//! crate's lexicon and rules) — for English segments only, and labelled as such:
//! a crude signal of tone, never a judgement of a person. Other languages get none
//! (no lexicon exists here for them), so a Korean segment is not scored at all
//! rather than scored wrongly.

use super::text::{lang_of, Lang};
use super::Utterance;
use serde::Serialize;
use std::collections::BTreeMap;

/// What made the numbers, shown beside them.
pub const METHOD: &str = "VADER lexicon, English segments only";
/// VADER's usual thresholds on the compound score.
pub const POSITIVE: f64 = 0.05;
pub const NEGATIVE: f64 = -0.05;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub seq: u64,
    /// Seconds from the meeting's start.
    pub at: f64,
    pub speaker: String,
    /// -1 (most negative) to 1 (most positive).
    pub compound: f64,
    /// `positive`, `neutral` or `negative`.
    pub label: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sentiment {
    pub method: &'static str,
    /// The English segments, scored.
    pub segments: Vec<Scored>,
    /// Segments not scored (another language).
    pub skipped: usize,
    pub positive: usize,
    pub neutral: usize,
    pub negative: usize,
    /// The mean compound score per speaker.
    pub by_speaker: BTreeMap<String, f64>,
}

fn label(compound: f64) -> &'static str {
    if compound >= POSITIVE {
        "positive"
    } else if compound <= NEGATIVE {
        "negative"
    } else {
        "neutral"
    }
}

/// One text's compound score; `None` if the scorer fails on it (it is third-party
/// code on transcript text: a panic there must not take a request down).
fn compound(analyzer: &vader_sentiment::SentimentIntensityAnalyzer, text: &str) -> Option<f64> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        analyzer.polarity_scores(text).get("compound").copied()
    }))
    .ok()
    .flatten()
    .filter(|c| c.is_finite())
}

/// English as far as a lexicon of English words can tell: no Hangul, and mostly
/// Latin letters (a Russian or Greek segment is not scored as English).
fn english(text: &str) -> bool {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    lang_of(text) == Lang::English && latin > 0 && latin * 2 >= letters
}

/// The sentiment of the English utterances of `said`; `None` when none is English.
pub fn sentiment(said: &[Utterance]) -> Option<Sentiment> {
    let analyzer = vader_sentiment::SentimentIntensityAnalyzer::new();
    let mut segments = vec![];
    let mut skipped = 0;
    for u in said {
        match english(&u.text)
            .then(|| compound(&analyzer, &u.text))
            .flatten()
        {
            Some(c) => segments.push(Scored {
                seq: u.seq,
                at: u.start,
                speaker: u.speaker.clone(),
                compound: c,
                label: label(c),
            }),
            None => skipped += 1,
        }
    }
    if segments.is_empty() {
        return None;
    }
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for s in &segments {
        let e = sums.entry(s.speaker.clone()).or_default();
        e.0 += s.compound;
        e.1 += 1;
    }
    let count = |l: &str| segments.iter().filter(|s| s.label == l).count();
    Some(Sentiment {
        method: METHOD,
        positive: count("positive"),
        neutral: count("neutral"),
        negative: count("negative"),
        by_speaker: sums
            .into_iter()
            .map(|(k, (sum, n))| (k, sum / n as f64))
            .collect(),
        skipped,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(seq: u64, speaker: &str, text: &str) -> Utterance {
        Utterance {
            seq,
            start: seq as f64 * 5.0,
            end: seq as f64 * 5.0 + 4.0,
            speaker: speaker.into(),
            text: text.into(),
        }
    }

    #[test]
    fn english_segments_are_scored_and_labelled_others_skipped() {
        let said = [
            u(
                0,
                "Ana",
                "The new checklist is great and the nurses love it",
            ),
            u(
                1,
                "Ben",
                "The delay was terrible and the family was very upset",
            ),
            u(2, "Ana", "The meeting is on Thursday"),
            u(3, "Ben", "회의를 시작하겠습니다"),
            u(4, "Ben", "Это было ужасно"),
        ];
        let s = sentiment(&said).expect("english");
        assert_eq!(s.method, METHOD);
        let labels: Vec<&str> = s.segments.iter().map(|x| x.label).collect();
        assert_eq!(labels, ["positive", "negative", "neutral"]);
        assert_eq!((s.positive, s.neutral, s.negative, s.skipped), (1, 1, 1, 2));
        assert!(s.by_speaker["Ana"] > 0.0 && s.by_speaker["Ben"] < 0.0);
        // "not great" is VADER's negation, not a positive word.
        let n = sentiment(&[u(0, "Ana", "The new checklist is not great")]).expect("english");
        assert!(n.segments[0].compound < 0.0, "{n:?}");
    }

    #[test]
    fn no_english_no_sentiment() {
        assert_eq!(sentiment(&[u(0, "Ana", "회의를 시작하겠습니다")]), None);
        assert_eq!(sentiment(&[]), None);
    }

    proptest! {
        #[test]
        fn any_text_gets_a_score_in_range_or_none(text in "\\PC{0,80}") {
            if let Some(s) = sentiment(&[u(0, "x", &text)]) {
                prop_assert!(s.segments.iter().all(|x| (-1.0..=1.0).contains(&x.compound)));
            }
        }
    }
}
