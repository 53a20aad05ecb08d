//! SRT and WebVTT: one cue per segment, numbered from 1, times to the millisecond.
//! WebVTT names the speaker in a voice tag (`<v Dr. Kim>`) and marks a corrected cue
//! (with its original, when asked) in a `NOTE` comment; SRT, which has neither, starts
//! the text with the name. A cue never ends before it starts (a segment of no
//! length gets one millisecond) and its text is one line.

use super::{one_line, Transcript};
use std::fmt::Write;

/// Milliseconds of a segment's start and end, end after start.
fn span(start: f64, end: f64) -> (u64, u64) {
    let ms = |s: f64| (s.max(0.0) * 1000.0).round() as u64;
    let (a, b) = (ms(start), ms(end));
    (a, b.max(a + 1))
}

fn stamp(ms: u64, sep: char) -> String {
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// One line, and no "-->" (a cue timing line to a lenient parser).
fn line(s: &str) -> String {
    one_line(s).replace("-->", "→")
}

pub fn srt(t: &Transcript) -> String {
    let mut out = String::new();
    for (i, s) in t.segments.iter().enumerate() {
        let (a, b) = span(s.start, s.end);
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}: {}\n\n",
            i + 1,
            stamp(a, ','),
            stamp(b, ','),
            line(&s.speaker),
            line(&s.text)
        );
    }
    out
}

/// Text in a cue: `&`, `<` and `>` are markup in WebVTT.
fn escape(s: &str) -> String {
    line(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn vtt(t: &Transcript) -> String {
    let mut out = format!("WEBVTT - {}\n\n", line(&t.meeting.title));
    for (i, s) in t.segments.iter().enumerate() {
        let (a, b) = span(s.start, s.end);
        // A comment block, never shown: marks a corrected cue (and its original).
        if s.edited {
            let _ = match &s.original {
                Some(o) => writeln!(out, "NOTE corrected; original: {}\n", escape(o)),
                None => writeln!(out, "NOTE corrected\n"),
            };
        }
        let _ = write!(
            out,
            "{}\n{} --> {}\n<v {}>{}\n\n",
            i + 1,
            stamp(a, '.'),
            stamp(b, '.'),
            escape(&s.speaker),
            escape(&s.text)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn cues_are_numbered_timed_and_one_line_each() {
        let srt = srt(&sample());
        assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:04,000\nchannel 1: =HYPERLINK"));
        assert!(srt.contains("\n2\n00:00:04,250 --> 00:00:09,500\nDr. Kim <ward 4>: 회의를"));
        assert!(srt.contains("→ on\n"), "{srt}");
        assert!(srt.contains("\n3\n01:02:05,000 --> 01:02:05,001\nunknown: the end\n"));
        let vtt = vtt(&sample());
        assert!(vtt.starts_with(
            "WEBVTT - Ward round \"north\"\n\n1\n00:00:00.000 --> 00:00:04.000\n<v channel 1>"
        ));
        assert!(
            vtt.contains("\nNOTE corrected; original: 회의 시작 합니다\n\n2\n"),
            "{vtt}"
        );
        assert!(vtt.contains("<v Dr. Kim &lt;ward 4&gt;>회의를 시작합니다 &amp; &lt;b&gt;not bold&lt;/b&gt; → on\n"), "{vtt}");
    }
}
