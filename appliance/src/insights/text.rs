//! Words and sentences of a transcript's text, as the rules read them: lowercase
//! tokens without punctuation (Vosk writes none, Whisper does), sentences split at
//! `.`, `?` and `!` where the engine wrote them, and the language told by its script.

/// A sentence of one utterance: its text as written, its words as written and their
/// lowercase tokens (one token per word).
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    pub text: String,
    pub words: Vec<String>,
    pub tokens: Vec<String>,
    /// Whether the engine ended it with a question mark.
    pub asked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    English,
    Korean,
}

/// Korean when any Hangul syllable is present, else English (the languages rules
/// exist for).
pub fn lang_of(text: &str) -> Lang {
    if text.chars().any(is_hangul) {
        Lang::Korean
    } else {
        Lang::English
    }
}

fn is_hangul(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c) || ('\u{1100}'..='\u{11FF}').contains(&c)
}

/// Lowercase words without the punctuation around them (inner apostrophes stay:
/// "i'll", "week's").
pub fn tokens(text: &str) -> Vec<String> {
    text.split_whitespace().filter_map(token).collect()
}

/// One word's token; `None` for punctuation alone.
fn token(w: &str) -> Option<String> {
    let t = w
        .replace('\u{2019}', "'")
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
        .trim_matches('\'')
        .to_lowercase();
    (!t.is_empty()).then_some(t)
}

/// The sentences of `text`: split after `.`, `?`, `!` (and their full-width forms)
/// that end a word; a text without any is one sentence.
pub fn sentences(text: &str) -> Vec<Sentence> {
    let mut out = vec![];
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
        if word.ends_with(['.', '?', '!', '。', '？', '！']) {
            push_sentence(&mut out, &cur);
            cur.clear();
        }
    }
    push_sentence(&mut out, &cur);
    out
}

fn push_sentence(out: &mut Vec<Sentence>, text: &str) {
    let (words, tokens): (Vec<String>, Vec<String>) = text
        .split_whitespace()
        .filter_map(|w| token(w).map(|t| (w.to_owned(), t)))
        .unzip();
    if tokens.is_empty() {
        return;
    }
    out.push(Sentence {
        text: text.trim().to_owned(),
        words,
        tokens,
        asked: text.trim_end().ends_with(['?', '？']),
    });
}

/// Where `phrase` (tokens) starts in `tokens`, from `from` on.
pub fn find(tokens: &[String], phrase: &[&str], from: usize) -> Option<usize> {
    if phrase.is_empty() || tokens.len() < phrase.len() {
        return None;
    }
    (from..=tokens.len() - phrase.len())
        .find(|&i| phrase.iter().enumerate().all(|(k, p)| tokens[i + k] == *p))
}

/// English words that carry no topic, for the summary's weights.
pub fn is_stopword(w: &str) -> bool {
    const STOP: &[&str] = &[
        "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
        "be", "been", "before", "being", "both", "but", "by", "can", "could", "did", "do", "does",
        "doing", "for", "from", "get", "go", "going", "good", "had", "has", "have", "he", "her",
        "here", "him", "his", "how", "i", "i'll", "i'm", "if", "in", "into", "is", "it", "it's",
        "its", "just", "let's", "like", "me", "more", "my", "no", "not", "now", "of", "ok", "okay",
        "on", "one", "or", "our", "out", "please", "really", "right", "she", "so", "some", "still",
        "than", "thank", "thanks", "that", "that's", "the", "their", "them", "then", "there",
        "these", "they", "this", "to", "too", "um", "uh", "up", "us", "very", "was", "we", "we'll",
        "we're", "well", "were", "what", "when", "where", "which", "who", "why", "will", "with",
        "would", "yeah", "yes", "you", "you're", "your",
    ];
    STOP.contains(&w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_drop_punctuation_and_keep_inner_apostrophes() {
        assert_eq!(
            tokens("Okay, I'll send next week's plan — \"today\"!"),
            ["okay", "i'll", "send", "next", "week's", "plan", "today"]
        );
    }

    #[test]
    fn sentences_split_where_the_engine_punctuated_and_not_otherwise() {
        let s = sentences("Can you help? I will. thanks");
        assert_eq!(s.len(), 3);
        assert!(s[0].asked && !s[1].asked && !s[2].asked);
        assert_eq!(s[1].text, "I will.");
        assert_eq!(sentences("no punctuation here at all").len(), 1);
        assert!(sentences("  ... ").is_empty());
    }

    #[test]
    fn the_script_tells_the_language() {
        assert_eq!(lang_of("다음 주까지 완료하겠습니다"), Lang::Korean);
        assert_eq!(lang_of("by friday"), Lang::English);
    }

    #[test]
    fn find_matches_whole_tokens_only() {
        let t = tokens("we will send it and i will call");
        assert_eq!(find(&t, &["i", "will"], 0), Some(5));
        assert_eq!(find(&t, &["will"], 2), Some(6));
        assert_eq!(find(&t, &["wil"], 0), None);
        assert_eq!(find(&t, &[], 0), None);
    }
}
