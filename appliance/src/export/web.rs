//! A standalone, printable HTML page: the meeting's details, then each segment with
//! its time, speaker and text; corrected segments marked (with the original when it
//! was asked for). Every value is escaped; the page loads nothing from anywhere.

use super::{clock, date, GeneratedLine, Transcript};
use std::fmt::Write;

pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;color:#1d2430;max-width:52rem;margin:2rem auto;padding:0 1rem}\
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1rem;margin:0 0 .3rem}.consent ul{margin:0 0 1.2rem;padding-left:1.2rem;color:#475467}.consent li{display:list-item;border:0;padding:0}dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;color:#475467;margin:0 0 1.2rem}\
dd{margin:0}ol{list-style:none;padding:0}li{display:grid;grid-template-columns:5rem 1fr;gap:.8rem;padding:.45rem 0;border-top:1px solid #d0d5dd;break-inside:avoid}\
.t{color:#667085;font-variant-numeric:tabular-nums}.s{font-weight:600;color:#1f4e79}.c{font-size:.8rem;color:#1a7f37}\
.o{font-size:.85rem;color:#667085}@media print{body{margin:0;max-width:none}}";

pub fn html(t: &Transcript) -> String {
    let m = &t.meeting;
    let mut out = format!(
        "<!doctype html>\n<html lang=\"und\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n<dl>\
<dt>Room</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd><dt>Duration</dt><dd>{}</dd>\
<dt>Engine</dt><dd>{}</dd><dt>Meeting</dt><dd>{}</dd></dl>\n",
        esc(&m.title),
        esc(&m.title),
        esc(&m.room),
        date(m.started_at_ms),
        clock(m.duration_s),
        esc(&m.engines.join(", ")),
        esc(&m.id),
    );
    let consent = m.consent.lines();
    if !consent.is_empty() {
        out.push_str("<section class=\"consent\"><h2>Consent</h2><ul>\n");
        for l in consent {
            let _ = writeln!(out, "<li>{}</li>", esc(&l));
        }
        out.push_str("</ul></section>\n");
    }
    let generated = t
        .generated
        .iter()
        .flat_map(|g| g.lines())
        .collect::<Vec<_>>();
    if !generated.is_empty() {
        out.push_str("<section class=\"consent generated\">");
        let mut open = false;
        for line in generated {
            match line {
                GeneratedLine::Heading(h) => {
                    if open {
                        out.push_str("</ul>");
                    }
                    let _ = write!(out, "<h2>{}</h2><ul>", esc(&h));
                    open = true;
                }
                GeneratedLine::Text(l) => {
                    let _ = writeln!(out, "<li>{}</li>", esc(&l));
                }
            }
        }
        if open {
            out.push_str("</ul>");
        }
        out.push_str("</section>\n");
    }
    out.push_str("<ol class=\"segments\">\n");
    for s in &t.segments {
        let _ = write!(
            out,
            "<li data-seq=\"{}\"><span class=\"t\">{}</span><div><span class=\"s\">{}</span> \
<span class=\"x\">{}</span>",
            s.seq,
            clock(s.start),
            esc(&s.speaker),
            esc(&s.text)
        );
        if s.edited {
            out.push_str(" <span class=\"c\">(corrected)</span>");
        }
        if let Some(o) = &s.original {
            let _ = write!(out, "<div class=\"o\">Original: {}</div>", esc(o));
        }
        out.push_str("</div></li>\n");
    }
    out.push_str("</ol>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn everything_from_a_transcript_is_escaped() {
        let h = html(&sample());
        assert!(h.contains("<title>Ward round &quot;north&quot;</title>"));
        assert!(h.contains("Dr. Kim &lt;ward 4&gt;"));
        assert!(h.contains("&amp; &lt;b&gt;not bold&lt;/b&gt; --&gt; on"));
        assert!(!h.contains("<b>"));
        assert!(h.contains("(corrected)</span><div class=\"o\">Original: 회의 시작 합니다</div>"));
        assert_eq!(h.matches("<li ").count(), 3);
        // The generated block is headed as such, and escaped like the rest.
        assert!(h.contains("<h2>Summary — generated (extractive summary (Roomscribe, on this appliance)); check it against the transcript</h2>"));
        assert!(h.contains("[00:00] channel 1: first &lt;b&gt;words&lt;/b&gt;"));
        assert!(h.contains("<h2>Action items — generated</h2><ul><li>[00:03] Send the &lt;minutes&gt; · owner Dr. Kim · due 2026-12-01 · open</li>"));
    }
}
