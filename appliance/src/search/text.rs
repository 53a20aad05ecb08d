//! How transcript text becomes index terms, the same way for what is stored and what
//! is typed into the search box: words of letters and digits, lower-cased; in Korean,
//! Japanese and Chinese text every character is a term of its own, so any part of a
//! word a person types (a syllable of a Vosk word, two characters of a Whisper
//! sentence) is found as the phrase of its characters. No stemming: legal and
//! clinical wording is found as it was said.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the tokenizer is registered under in the index.
pub const TOKENIZER: &str = "roomscribe";

/// Hangul, kana, CJK ideographs and Bopomofo: scripts written without spaces
/// between words (or, for Korean, with words too long to type whole).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3100..=0x312F     // Bopomofo
        | 0x3130..=0x318F     // Hangul Compatibility Jamo
        | 0x31F0..=0x31FF     // Katakana Phonetic Extensions
        | 0x3400..=0x4DBF     // CJK Extension A
        | 0x4E00..=0x9FFF     // CJK Unified Ideographs
        | 0xA960..=0xA97F     // Hangul Jamo Extended-A
        | 0xAC00..=0xD7AF     // Hangul Syllables
        | 0xD7B0..=0xD7FF     // Hangul Jamo Extended-B
        | 0xF900..=0xFAFF     // CJK Compatibility Ideographs
        | 0xFF66..=0xFF9F     // Halfwidth Katakana
        | 0x20000..=0x2FA1F) // CJK Extensions B and later
}

/// One term: its text and where it lies in the input (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    pub from: usize,
    pub to: usize,
}

/// The terms of `text`, in order; consecutive terms have consecutive positions.
pub fn terms(text: &str) -> Vec<Term> {
    let mut out = vec![];
    let mut word: Option<(usize, String)> = None;
    let flush = |word: &mut Option<(usize, String)>, end: usize, out: &mut Vec<Term>| {
        if let Some((from, text)) = word.take() {
            out.push(Term {
                text,
                from,
                to: end,
            });
        }
    };
    for (i, c) in text.char_indices() {
        if is_cjk(c) {
            flush(&mut word, i, &mut out);
            out.push(Term {
                text: c.to_string(),
                from: i,
                to: i + c.len_utf8(),
            });
        } else if c.is_alphanumeric() {
            let w = word.get_or_insert_with(|| (i, String::new()));
            w.1.extend(c.to_lowercase());
        } else {
            flush(&mut word, i, &mut out);
        }
    }
    flush(&mut word, text.len(), &mut out);
    out
}

/// [`terms`] for tantivy.
#[derive(Clone, Default)]
pub struct TranscriptTokenizer;

pub struct Stream {
    terms: std::vec::IntoIter<Term>,
    position: usize,
    token: Token,
}

impl Tokenizer for TranscriptTokenizer {
    type TokenStream<'a> = Stream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Stream {
        Stream {
            terms: terms(text).into_iter(),
            position: 0,
            token: Token::default(),
        }
    }
}

impl TokenStream for Stream {
    fn advance(&mut self) -> bool {
        let Some(t) = self.terms.next() else {
            return false;
        };
        self.token = Token {
            offset_from: t.from,
            offset_to: t.to,
            position: self.position,
            text: t.text,
            position_length: 1,
        };
        self.position += 1;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        terms(s).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn words_are_lower_cased_and_split_on_anything_else() {
        assert_eq!(
            texts("The patient's BP: 120/80, re-check at 9."),
            ["the", "patient", "s", "bp", "120", "80", "re", "check", "at", "9"]
        );
        assert_eq!(texts("Größe ÉTÉ"), ["größe", "été"]);
        assert!(texts(" ,.;— ").is_empty());
    }

    #[test]
    fn cjk_characters_are_terms_of_their_own_with_their_offsets() {
        let t = terms("회의록을 보자 ok 東京タワー");
        let got: Vec<_> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            got,
            ["회", "의", "록", "을", "보", "자", "ok", "東", "京", "タ", "ワ", "ー"]
        );
        let s = "회의록을 보자 ok 東京タワー";
        for term in &t {
            assert_eq!(&s[term.from..term.to].to_lowercase(), &term.text);
        }
    }

    #[test]
    fn latin_next_to_cjk_splits() {
        assert_eq!(texts("abc회의2"), ["abc", "회", "의", "2"]);
    }
}
