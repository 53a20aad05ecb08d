//! The part of a segment shown in a result, with the words that matched marked.
//! Marks are character offsets into the snippet's text, so the console builds the
//! highlight from text nodes (never from HTML).

use super::query::Expr;
use super::text::terms;
use serde::Serialize;

/// Longest snippet, in characters (a segment longer is cut around its first match).
pub const MAX_CHARS: usize = 200;
/// How much text comes before the first match in a cut snippet.
const LEAD_CHARS: usize = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snippet {
    pub text: String,
    /// `[from, to)` character offsets into `text`.
    pub highlights: Vec<[usize; 2]>,
}

/// The phrases a query asks for (its NOT parts excluded): runs of terms, the last
/// one possibly a prefix. Only whole runs are marked, not their terms wherever they
/// occur alone.
#[derive(Debug, Default)]
pub struct Marks {
    runs: Vec<(Vec<String>, bool)>,
}

impl Marks {
    pub fn of(e: &Expr) -> Self {
        let mut m = Self::default();
        m.collect(e);
        m
    }

    fn collect(&mut self, e: &Expr) {
        match e {
            Expr::Phrase(t) => self.runs.push((t.clone(), false)),
            Expr::Prefix(t) => self.runs.push((t.clone(), true)),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| self.collect(e)),
            Expr::Not(_) => {}
        }
    }

    /// How many terms from `at` a run covers, if one matches there.
    fn run_at(&self, terms: &[super::text::Term], at: usize) -> Option<usize> {
        self.runs.iter().find_map(|(run, prefix)| {
            let got = terms.get(at..at + run.len())?;
            let last = run.len() - 1;
            let all = run.iter().zip(got).enumerate().all(|(i, (want, t))| {
                if *prefix && i == last {
                    t.text.starts_with(want.as_str())
                } else {
                    t.text == *want
                }
            });
            all.then_some(run.len())
        })
    }

    pub fn snippet(&self, text: &str) -> Snippet {
        // Byte offset → character offset.
        let char_at = |byte: usize| text[..byte].chars().count();
        let terms = terms(text);
        let mut marked: Vec<[usize; 2]> = vec![];
        let mut at = 0;
        while at < terms.len() {
            match self.run_at(&terms, at) {
                Some(n) => {
                    for t in &terms[at..at + n] {
                        marked.push([char_at(t.from), char_at(t.to)]);
                    }
                    at += n;
                }
                None => at += 1,
            }
        }
        let total = text.chars().count();
        if total <= MAX_CHARS {
            return Snippet {
                text: text.to_owned(),
                highlights: merge(marked),
            };
        }
        let first = marked.first().map_or(0, |m| m[0]);
        let mut start = first.saturating_sub(LEAD_CHARS);
        // Begin at a word boundary when one is near.
        let chars: Vec<char> = text.chars().collect();
        if start > 0 {
            if let Some(ws) = (start..first).find(|&i| chars[i].is_whitespace()) {
                start = ws + 1;
            }
        }
        let end = (start + MAX_CHARS).min(total);
        let lead = usize::from(start > 0);
        let mut out: String = if start > 0 {
            "…".into()
        } else {
            String::new()
        };
        out.extend(&chars[start..end]);
        if end < total {
            out.push('…');
        }
        let highlights = marked
            .into_iter()
            .filter(|m| m[0] >= start && m[1] <= end)
            .map(|m| [m[0] - start + lead, m[1] - start + lead])
            .collect();
        Snippet {
            text: out,
            highlights: merge(highlights),
        }
    }
}

/// Joins adjacent marks (the characters of a CJK word are one highlight).
fn merge(marks: Vec<[usize; 2]>) -> Vec<[usize; 2]> {
    let mut out: Vec<[usize; 2]> = vec![];
    for m in marks {
        match out.last_mut() {
            Some(last) if last[1] == m[0] => last[1] = m[1],
            _ => out.push(m),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::parse;

    fn shown(s: &Snippet) -> Vec<String> {
        let chars: Vec<char> = s.text.chars().collect();
        s.highlights
            .iter()
            .map(|[a, b]| chars[*a..*b].iter().collect())
            .collect()
    }

    #[test]
    fn marks_what_was_asked_for_and_not_what_was_excluded() {
        let m = Marks::of(&parse("budget revi* -minutes").unwrap());
        let s = m.snippet("The Budget review, minutes and reviewers.");
        assert_eq!(shown(&s), ["Budget", "review", "reviewers"]);
    }

    #[test]
    fn cjk_matches_are_one_highlight_with_character_offsets() {
        let m = Marks::of(&parse("회의").unwrap());
        let s = m.snippet("의견: 오늘 회의록을 봅시다");
        assert_eq!(shown(&s), ["회의"], "a lone 의 is not part of the match");
        assert_eq!(s.highlights, [[7, 9]]);
    }

    #[test]
    fn phrases_are_marked_whole_or_not_at_all() {
        let m = Marks::of(&parse("\"budget review\"").unwrap());
        let s = m.snippet("budget first, then the budget review");
        assert_eq!(shown(&s), ["budget", "review"]);
        assert_eq!(s.highlights, [[23, 29], [30, 36]]);
    }

    #[test]
    fn a_long_segment_is_cut_around_its_first_match() {
        let text = format!("{} needle {}", "filler ".repeat(60), "tail ".repeat(60));
        let s = Marks::of(&parse("needle").unwrap()).snippet(&text);
        assert!(s.text.starts_with('…') && s.text.ends_with('…'));
        assert!(s.text.chars().count() <= MAX_CHARS + 2);
        assert_eq!(shown(&s), ["needle"]);
    }
}
