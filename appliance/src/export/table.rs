//! Plain text (one line per segment) and CSV (one row per segment: start, end,
//! speaker, text, confidence, edited, and the original when asked for).

use super::{clock, date, one_line, GeneratedLine, Transcript};
use std::fmt::Write;

pub fn text(t: &Transcript) -> String {
    let m = &t.meeting;
    let mut out = format!(
        "{}\nroom: {}\nstarted: {}\nduration: {}\nmeeting: {}\n",
        one_line(&m.title),
        one_line(&m.room),
        date(m.started_at_ms),
        clock(m.duration_s),
        m.id
    );
    for line in m.consent.lines() {
        let _ = writeln!(out, "consent: {}", one_line(&line));
    }
    for line in t.generated.iter().flat_map(|g| g.lines()) {
        let _ = match line {
            GeneratedLine::Heading(h) => writeln!(out, "\n{h}"),
            GeneratedLine::Text(l) => writeln!(out, "{l}"),
        };
    }
    out.push('\n');
    for s in &t.segments {
        let mark = if s.edited { " [corrected]" } else { "" };
        let _ = writeln!(
            out,
            "[{}] {}: {}{mark}",
            clock(s.start),
            one_line(&s.speaker),
            one_line(&s.text)
        );
        if let Some(o) = &s.original {
            let _ = writeln!(out, "    original: {}", one_line(o));
        }
    }
    out
}

/// A CSV field: quoted when it holds a comma, quote or line break (RFC 4180), or a
/// semicolon or tab (the separators spreadsheets use in other locales, which would
/// otherwise start a new cell mid-field). A field a spreadsheet would run as a
/// formula (`=`, `+`, `-`, `@` first) starts with an apostrophe, as OWASP advises for
/// CSV injection.
pub(crate) fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r', ';', '\t']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn csv(t: &Transcript) -> String {
    let originals = t.segments.iter().any(|s| s.original.is_some());
    let mut out = String::from("start,end,speaker,text,confidence,edited");
    out.push_str(if originals { ",original\r\n" } else { "\r\n" });
    for s in &t.segments {
        let _ = write!(
            out,
            "{:.3},{:.3},{},{},{:.2},{}",
            s.start,
            s.end,
            field(&s.speaker),
            field(&s.text),
            s.confidence,
            s.edited
        );
        if originals {
            out.push(',');
            out.push_str(&field(s.original.as_deref().unwrap_or_default()));
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let csv = csv(&sample());
        let lines: Vec<_> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "start,end,speaker,text,confidence,edited,original"
        );
        assert_eq!(
            lines[1],
            "0.000,4.000,channel 1,\"'=HYPERLINK(\"\"x\"\") first, words\",0.80,false,"
        );
        assert!(
            lines[2].ends_with(",0.80,true,회의 시작 합니다"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn text_marks_corrections_and_their_originals() {
        let text = text(&sample());
        assert!(text.starts_with("Ward round \"north\"\nroom: Ward 4\nstarted: 2026-11-30"));
        assert!(text.contains("[00:04] Dr. Kim <ward 4>: 회의를 시작합니다"));
        assert!(text.contains(" [corrected]\n    original: 회의 시작 합니다\n"));
        assert!(text.contains("[1:02:05] unknown: the end\n"));
        // The generated summary and items come before the transcript, headed as such.
        let summary = text
            .find("\nSummary — generated (extractive summary")
            .expect("summary");
        let items = text
            .find("\nAction items — generated\n[00:03] Send the <minutes> · owner Dr. Kim · due 2026-12-01 · open\n")
            .expect("items");
        let first = text
            .find("[00:00] channel 1: =HYPERLINK")
            .expect("first segment");
        assert!(summary < items && items < first, "{text}");
    }
}
