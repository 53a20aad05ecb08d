//! Word times for corrected text, without I/O: the words a correction keeps keep
//! their times (and confidences); the words it adds share the time between the kept
//! words around them; the segment's time span does not change.

use crate::store::records::WordRecord;

/// The confidence of a word a person typed: certain, so it is never flagged for review.
pub const TYPED: f32 = 1.0;

/// Words for `text` (split on whitespace) with times taken from `old` where the words
/// match (case and surrounding punctuation aside, in order: a longest common
/// subsequence), and spread evenly over the gaps for the rest, within `start..=end`.
pub fn align(old: &[WordRecord], text: &str, start: f64, end: f64) -> Vec<WordRecord> {
    let new: Vec<&str> = text.split_whitespace().collect();
    let pairs = common(
        &old.iter().map(|w| norm(&w.word)).collect::<Vec<_>>(),
        &new.iter().map(|w| norm(w)).collect::<Vec<_>>(),
    );
    let (start, end) = (start.min(end), end.max(start));
    let mut out: Vec<WordRecord> = Vec::with_capacity(new.len());
    let mut kept = pairs.iter().peekable();
    let mut i = 0;
    while i < new.len() {
        if let Some(&&(o, n)) = kept.peek() {
            if n == i {
                let w = &old[o];
                out.push(WordRecord {
                    word: new[i].to_owned(),
                    start: w.start,
                    end: w.end,
                    conf: w.conf,
                });
                kept.next();
                i += 1;
                continue;
            }
        }
        // A run of typed words, up to the next kept word (or the end).
        let run_end = kept.peek().map_or(new.len(), |&&(_, n)| n);
        // From the last word's end (or the span's start) to the next kept word's
        // start; where the engine's words overlap, no later than that start, so that
        // starts never go backwards.
        let next = kept
            .peek()
            .map_or(end, |&&(o, _)| old[o].start)
            .clamp(start, end);
        let from = out
            .last()
            .map_or(start, |w| w.end)
            .clamp(start, end)
            .min(next);
        let to = next.max(from);
        let step = (to - from) / (run_end - i) as f64;
        for (k, word) in new[i..run_end].iter().enumerate() {
            out.push(WordRecord {
                word: (*word).to_owned(),
                start: from + step * k as f64,
                end: from + step * (k + 1) as f64,
                conf: TYPED,
            });
        }
        i = run_end;
    }
    out
}

/// A segment's confidence: the mean of its words' (0 without words), as agents compute it.
pub fn mean_confidence(words: &[WordRecord]) -> f32 {
    if words.is_empty() {
        return 0.0;
    }
    words.iter().map(|w| w.conf).sum::<f32>() / words.len() as f32
}

fn norm(w: &str) -> String {
    w.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// Index pairs (into `a`, into `b`) of a longest common subsequence, in order.
fn common(a: &[String], b: &[String]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    // lengths[i][j]: LCS of a[i..] and b[j..].
    let mut lengths = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lengths[i][j] = if a[i] == b[j] && !a[i].is_empty() {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while i < n && j < m {
        if a[i] == b[j] && !a[i].is_empty() {
            out.push((i, j));
            i += 1;
            j += 1;
        } else if lengths[i + 1][j] >= lengths[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(word: &str, start: f64, end: f64, conf: f32) -> WordRecord {
        WordRecord {
            word: word.into(),
            start,
            end,
            conf,
        }
    }

    #[test]
    fn kept_words_keep_their_times_and_typed_words_fill_the_gap() {
        let old = [
            w("the", 0.0, 0.2, 0.9),
            w("war", 0.3, 0.5, 0.4),
            w("fairing", 0.5, 0.9, 0.3),
            w("dose", 1.0, 1.4, 0.95),
        ];
        let new = align(&old, "The warfarin dose.", 0.0, 2.0);
        let words: Vec<_> = new.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(words, ["The", "warfarin", "dose."]);
        assert_eq!((new[0].start, new[0].end, new[0].conf), (0.0, 0.2, 0.9));
        assert_eq!((new[2].start, new[2].end, new[2].conf), (1.0, 1.4, 0.95));
        // The replaced words' time, between "the" and "dose".
        assert_eq!((new[1].start, new[1].end, new[1].conf), (0.2, 1.0, TYPED));
    }

    #[test]
    fn without_word_times_the_words_share_the_segment() {
        let new = align(&[], "one two three four", 10.0, 12.0);
        let times: Vec<_> = new.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(
            times,
            [(10.0, 10.5), (10.5, 11.0), (11.0, 11.5), (11.5, 12.0)]
        );
        assert!(align(&[], "  ", 0.0, 1.0).is_empty());
    }

    #[test]
    fn overlapping_engine_words_keep_starts_in_order() {
        let old = [w("a", 1.0, 2.0, 0.9), w("b", 1.8, 2.5, 0.9)];
        let new = align(&old, "a x b", 0.0, 3.0);
        let starts: Vec<_> = new.iter().map(|w| w.start).collect();
        assert_eq!(starts, [1.0, 1.8, 1.8]);
        assert!(new.windows(2).all(|p| p[0].start <= p[1].start));
    }

    fn words() -> impl Strategy<Value = Vec<WordRecord>> {
        prop::collection::vec(("[a-d]{1,3}", 0.0f64..0.5, 0.0f64..0.5, 0.0f32..1.0), 0..12)
            .prop_map(|v| {
                let mut t = 1.0;
                v.into_iter()
                    .map(|(word, gap, len, conf)| {
                        let s = t + gap;
                        t = s + len;
                        w(&word, s, t, conf)
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn every_typed_word_gets_a_time_in_order_within_the_span(
            old in words(),
            new in prop::collection::vec("[a-e]{1,3}", 0..15),
        ) {
            let end = old.last().map_or(2.0, |w| w.end + 0.5);
            let text = new.join(" ");
            let out = align(&old, &text, 1.0, end);
            prop_assert_eq!(out.len(), new.len());
            let mut last = 1.0;
            for (o, n) in out.iter().zip(&new) {
                prop_assert_eq!(&o.word, n);
                prop_assert!(o.start >= last - 1e-9 && o.end >= o.start - 1e-9, "{:?}", out);
                prop_assert!(o.end <= end + 1e-9);
                last = o.end;
            }
            // Text unchanged: every word keeps its time and confidence.
            let same = align(&old, &old.iter().map(|w| w.word.as_str()).collect::<Vec<_>>().join(" "), 1.0, end);
            prop_assert_eq!(same, old);
        }
    }
}
