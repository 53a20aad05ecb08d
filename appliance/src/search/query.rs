//! The search box's language, parsed without touching the index:
//!
//! - words: `budget review` finds segments holding both (AND is implied);
//! - `"exact phrase"`: the words next to each other, in order;
//! - `revi*`: any word starting so (at least two letters, or one CJK character);
//! - `AND`, `OR`, `NOT` (upper case), `-word`, and parentheses;
//!   `OR` binds looser than `AND`: `a b OR c` is `(a AND b) OR c`.
//!
//! Field syntax (`team:x`) is not part of it: filters are separate parameters, and
//! the caller's reach is added by the service, never by the query.

use super::text::{is_cjk, terms};
use std::fmt;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Consecutive terms (one word, or a run of CJK characters, or a quoted phrase).
    Phrase(Vec<String>),
    /// Consecutive terms, the last one a prefix.
    Prefix(Vec<String>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

/// Why a query cannot be run; the message says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query is empty: type a word to find")]
    Empty,
    #[error("the query is longer than {0} characters")]
    TooLong(usize),
    #[error("a quote is not closed")]
    UnclosedQuote,
    #[error("a parenthesis is not closed")]
    UnclosedParen,
    #[error("a closing parenthesis has no opening one")]
    UnopenedParen,
    #[error("{0} needs a word on each side")]
    DanglingOperator(&'static str),
    #[error("a prefix needs at least two letters (or one CJK character) before the *")]
    ShortPrefix,
    #[error("nothing to find: a query of only NOT parts would list everything")]
    OnlyNegative,
    #[error("the query has more than {0} parts")]
    TooComplex(usize),
}

pub const MAX_LEN: usize = 500;
pub const MAX_PARTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    And,
    Or,
    Not,
    Minus,
    Open,
    Close,
}

fn lex(q: &str) -> Result<Vec<Tok>, QueryError> {
    let mut out = vec![];
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' | '“' | '”' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"' | '“' | '”') => break,
                        Some(c) => s.push(c),
                        None => return Err(QueryError::UnclosedQuote),
                    }
                }
                out.push(Tok::Quoted(s));
            }
            '(' => {
                chars.next();
                out.push(Tok::Open);
            }
            ')' => {
                chars.next();
                out.push(Tok::Close);
            }
            // At the start of a token (a hyphen inside a word belongs to the word).
            '-' => {
                chars.next();
                out.push(Tok::Minus);
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '"' | '“' | '”' | '(' | ')') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(match s.as_str() {
                    "AND" | "&&" => Tok::And,
                    "OR" | "||" => Tok::Or,
                    "NOT" => Tok::Not,
                    _ => Tok::Word(s),
                });
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    parts: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn or(&mut self) -> Result<Option<Expr>, QueryError> {
        let mut alts = vec![];
        loop {
            let left = self.and()?;
            match self.peek() {
                Some(Tok::Or) => {
                    self.at += 1;
                    alts.push(left.ok_or(QueryError::DanglingOperator("OR"))?);
                }
                _ => {
                    if let Some(l) = left {
                        alts.push(l);
                    } else if !alts.is_empty() {
                        return Err(QueryError::DanglingOperator("OR"));
                    }
                    break;
                }
            }
        }
        Ok(match alts.len() {
            0 => None,
            1 => alts.pop(),
            _ => Some(Expr::Or(alts)),
        })
    }

    fn and(&mut self) -> Result<Option<Expr>, QueryError> {
        let mut all = vec![];
        loop {
            match self.peek() {
                None | Some(Tok::Or | Tok::Close) => break,
                Some(Tok::And) => {
                    self.at += 1;
                    if all.is_empty() {
                        return Err(QueryError::DanglingOperator("AND"));
                    }
                    match self.unary()? {
                        Some(e) => all.push(e),
                        None => return Err(QueryError::DanglingOperator("AND")),
                    }
                }
                _ => {
                    if let Some(e) = self.unary()? {
                        all.push(e);
                    }
                }
            }
        }
        Ok(match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Expr::And(all)),
        })
    }

    fn unary(&mut self) -> Result<Option<Expr>, QueryError> {
        match self.peek() {
            Some(Tok::Not | Tok::Minus) => {
                self.at += 1;
                match self.unary()? {
                    // NOT NOT x is x.
                    Some(Expr::Not(e)) => Ok(Some(*e)),
                    Some(e) => Ok(Some(Expr::Not(Box::new(e)))),
                    None => Err(QueryError::DanglingOperator("NOT")),
                }
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<Option<Expr>, QueryError> {
        let Some(tok) = self.toks.get(self.at).cloned() else {
            return Ok(None);
        };
        self.at += 1;
        self.parts += 1;
        if self.parts > MAX_PARTS {
            return Err(QueryError::TooComplex(MAX_PARTS));
        }
        match tok {
            Tok::Open => {
                let inner = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(QueryError::UnclosedParen);
                }
                self.at += 1;
                Ok(inner)
            }
            Tok::Close => Err(QueryError::UnopenedParen),
            Tok::Quoted(s) => Ok(phrase(&s)),
            Tok::Word(w) => {
                if let Some(stem) = w.strip_suffix('*') {
                    let t: Vec<String> = terms(stem).into_iter().map(|t| t.text).collect();
                    let last = t.last().ok_or(QueryError::ShortPrefix)?;
                    let long_enough =
                        last.chars().count() >= 2 || last.chars().next().is_some_and(is_cjk);
                    if !long_enough {
                        return Err(QueryError::ShortPrefix);
                    }
                    Ok(Some(Expr::Prefix(t)))
                } else {
                    Ok(phrase(&w))
                }
            }
            Tok::And | Tok::Or | Tok::Not | Tok::Minus => {
                Err(QueryError::DanglingOperator("an operator"))
            }
        }
    }
}

fn phrase(s: &str) -> Option<Expr> {
    let t: Vec<String> = terms(s).into_iter().map(|t| t.text).collect();
    (!t.is_empty()).then_some(Expr::Phrase(t))
}

/// Whether anything in `e` must match (a query of only negations would match all).
fn positive(e: &Expr) -> bool {
    match e {
        Expr::Phrase(_) | Expr::Prefix(_) => true,
        Expr::Not(_) => false,
        Expr::And(v) => v.iter().any(positive),
        Expr::Or(v) => v.iter().all(positive),
    }
}

/// Parses what was typed into the search box.
pub fn parse(q: &str) -> Result<Expr, QueryError> {
    if q.chars().count() > MAX_LEN {
        return Err(QueryError::TooLong(MAX_LEN));
    }
    let mut p = Parser {
        toks: lex(q)?,
        at: 0,
        parts: 0,
    };
    let e = p.or()?;
    match p.peek() {
        None => {}
        Some(Tok::Close) => return Err(QueryError::UnopenedParen),
        Some(_) => return Err(QueryError::DanglingOperator("an operator")),
    }
    let e = e.ok_or(QueryError::Empty)?;
    if !positive(&e) {
        return Err(QueryError::OnlyNegative);
    }
    Ok(e)
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Phrase(t) if t.len() == 1 => write!(f, "{}", t[0]),
            Expr::Phrase(t) => write!(f, "\"{}\"", t.join(" ")),
            Expr::Prefix(t) => write!(f, "{}*", t.join(" ")),
            Expr::And(v) | Expr::Or(v) => {
                let op = if matches!(self, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts: Vec<String> = v.iter().map(|e| format!("({e})")).collect();
                write!(f, "{}", parts.join(op))
            }
            Expr::Not(e) => write!(f, "NOT ({e})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        Expr::Phrase(s.split(' ').map(str::to_owned).collect())
    }

    #[test]
    fn words_phrases_prefixes_and_operators() {
        assert_eq!(parse("Budget").unwrap(), p("budget"));
        assert_eq!(
            parse("budget review").unwrap(),
            Expr::And(vec![p("budget"), p("review")])
        );
        assert_eq!(parse("\"Budget Review\"").unwrap(), p("budget review"));
        assert_eq!(parse("revi*").unwrap(), Expr::Prefix(vec!["revi".into()]));
        assert_eq!(
            parse("a1 b2 OR c3").unwrap(),
            Expr::Or(vec![Expr::And(vec![p("a1"), p("b2")]), p("c3")])
        );
        assert_eq!(
            parse("a1 AND (b2 OR c3) NOT d4 -e5").unwrap(),
            Expr::And(vec![
                p("a1"),
                Expr::Or(vec![p("b2"), p("c3")]),
                Expr::Not(Box::new(p("d4"))),
                Expr::Not(Box::new(p("e5"))),
            ])
        );
        // A hyphen inside a word is part of it (its terms, as a phrase).
        assert_eq!(parse("re-check").unwrap(), p("re check"));
        // A double negation is no negation.
        assert_eq!(parse("a1 --b1").unwrap(), Expr::And(vec![p("a1"), p("b1")]));
        assert_eq!(
            parse("a1 NOT -b1").unwrap(),
            Expr::And(vec![p("a1"), p("b1")])
        );
        // Lower-case operators are words.
        assert_eq!(
            parse("a1 or b2").unwrap(),
            Expr::And(vec![p("a1"), p("or"), p("b2")])
        );
    }

    #[test]
    fn cjk_words_become_phrases_of_their_characters() {
        assert_eq!(parse("회의록").unwrap(), p("회 의 록"));
        assert_eq!(
            parse("회의*").unwrap(),
            Expr::Prefix(vec!["회".into(), "의".into()])
        );
        assert_eq!(parse("회*").unwrap(), Expr::Prefix(vec!["회".into()]));
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        assert_eq!(parse("  "), Err(QueryError::Empty));
        assert_eq!(parse("\"open"), Err(QueryError::UnclosedQuote));
        assert_eq!(parse("(a1 b2"), Err(QueryError::UnclosedParen));
        assert_eq!(parse("a1)"), Err(QueryError::UnopenedParen));
        assert_eq!(parse("a1 OR"), Err(QueryError::DanglingOperator("OR")));
        assert_eq!(parse("OR a1"), Err(QueryError::DanglingOperator("OR")));
        assert_eq!(parse("AND a1"), Err(QueryError::DanglingOperator("AND")));
        assert_eq!(parse("a1 NOT"), Err(QueryError::DanglingOperator("NOT")));
        assert_eq!(parse("a*"), Err(QueryError::ShortPrefix));
        assert_eq!(parse("*"), Err(QueryError::ShortPrefix));
        assert_eq!(parse("NOT a1"), Err(QueryError::OnlyNegative));
        assert_eq!(parse("-a1 -b2"), Err(QueryError::OnlyNegative));
        assert_eq!(parse("a1 OR -b2"), Err(QueryError::OnlyNegative));
        assert_eq!(parse(&"x".repeat(501)), Err(QueryError::TooLong(500)));
        assert_eq!(
            parse(&"w ".repeat(65)),
            Err(QueryError::TooComplex(MAX_PARTS))
        );
        // Punctuation alone is nothing to find.
        assert_eq!(parse("?!"), Err(QueryError::Empty));
    }

    #[test]
    fn deep_nesting_is_bounded_not_a_stack_overflow() {
        let q = format!("{}a1{}", "(".repeat(200), ")".repeat(200));
        assert!(matches!(parse(&q), Err(QueryError::TooComplex(_))));
    }
}
