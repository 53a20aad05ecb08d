//! A subject-access archive: a ZIP with the machine-readable `subject.json` and a
//! standalone, printable `subject.html` of the same content (every value escaped, the
//! page loads nothing). What goes in it is decided by `domain::subject`.

use super::web::esc;
use super::{clock, date};
use std::fmt::Write as _;
use std::io::Write as _;
use zip::write::SimpleFileOptions;

/// The page's content, as the domain gathered it.
pub struct Page<'a> {
    pub name: &'a str,
    pub username: Option<&'a str>,
    pub generated_by: &'a str,
    pub generated_at_ms: i64,
    pub meetings: Vec<PageMeeting<'a>>,
    pub audit: Vec<PageEntry<'a>>,
}

pub struct PageMeeting<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub room: &'a str,
    pub started_at_ms: i64,
    pub reasons: String,
    pub participants: String,
    /// Their consent evidence, a line each.
    pub consent: Vec<String>,
    /// (start seconds, speaker, text).
    pub segments: Vec<(f64, &'a str, &'a str)>,
}

pub struct PageEntry<'a> {
    pub at_ms: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: String,
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;color:#1d2430;max-width:52rem;margin:2rem auto;padding:0 1rem}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-top:2px solid #1f4e79;padding-top:.6rem}\
.m{color:#475467}ol{list-style:none;padding:0}li{display:grid;grid-template-columns:5rem 1fr;gap:.8rem;padding:.35rem 0;border-top:1px solid #d0d5dd}\
.t{color:#667085;font-variant-numeric:tabular-nums}.s{font-weight:600;color:#1f4e79}table{border-collapse:collapse;width:100%}\
td,th{border-top:1px solid #d0d5dd;padding:.3rem;text-align:left;font-size:.9rem}@media print{body{margin:0;max-width:none}}";

pub fn html(p: &Page) -> String {
    let who = match p.username {
        Some(u) => format!("{} (account {})", esc(p.name), esc(u)),
        None => esc(p.name),
    };
    let mut out = format!(
        "<!doctype html>\n<html lang=\"und\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Subject access: {}</title><style>{STYLE}</style></head><body>\n\
<h1>What this appliance holds about {who}</h1>\n<p class=\"m\">Made by {} on {}: {} meeting(s), {} audit entr{}. \
The file subject.json beside this page holds the same, machine-readable.</p>\n",
        esc(p.name),
        esc(p.generated_by),
        date(p.generated_at_ms),
        p.meetings.len(),
        p.audit.len(),
        if p.audit.len() == 1 { "y" } else { "ies" },
    );
    for m in &p.meetings {
        let _ = write!(
            out,
            "<h2 data-meeting=\"{}\">{}</h2>\n<p class=\"m\">{} · {} · meeting {} · included as: {} · participants: {}</p>\n",
            esc(m.id),
            esc(m.title),
            esc(m.room),
            date(m.started_at_ms),
            esc(m.id),
            esc(&m.reasons),
            esc(&m.participants),
        );
        for c in &m.consent {
            let _ = writeln!(out, "<p class=\"m consent\">Consent: {}</p>", esc(c));
        }
        out.push_str("<ol>\n");
        for (start, speaker, text) in &m.segments {
            let _ = writeln!(
                out,
                "<li><span class=\"t\">{}</span><div><span class=\"s\">{}</span> {}</div></li>",
                clock(*start),
                esc(speaker),
                esc(text)
            );
        }
        out.push_str("</ol>\n");
    }
    if !p.audit.is_empty() {
        out.push_str("<h2>Audit entries</h2>\n<table><thead><tr><th>When</th><th>By</th><th>Action</th><th>On</th><th>Outcome</th></tr></thead><tbody>\n");
        for e in &p.audit {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                date(e.at_ms),
                esc(e.actor),
                esc(e.action),
                esc(e.target),
                esc(&e.outcome)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// The archive: `subject.json` and `subject.html`, stamped with the zip epoch (the
/// bytes depend only on the content).
pub fn zip(json: &[u8], html: &[u8]) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, bytes) in [("subject.json", json), ("subject.html", html)] {
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        zip.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(zip.finish().map_err(|e| e.to_string())?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_everything_and_the_archive_holds_both_files() {
        let p = Page {
            name: "Kim <script>",
            username: Some("kim"),
            generated_by: "ada",
            generated_at_ms: 0,
            meetings: vec![PageMeeting {
                id: "m1",
                title: "Ward \"4\"",
                room: "North",
                started_at_ms: 0,
                reasons: "participant".into(),
                participants: "Kim <script>".into(),
                consent: vec!["Kim <script>: consented (form)".into()],
                segments: vec![(65.0, "Kim", "a <b>bold</b> claim")],
            }],
            audit: vec![PageEntry {
                at_ms: 0,
                actor: "kim",
                action: "login",
                target: "",
                outcome: "ok".into(),
            }],
        };
        let h = html(&p);
        assert!(!h.contains("<script>") && !h.contains("<b>"), "{h}");
        assert!(h.contains("Kim &lt;script&gt;") && h.contains("01:05"));
        assert!(h.contains("1 meeting(s), 1 audit entry"));
        let bytes = zip(b"{}", h.as_bytes()).expect("zip");
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
        assert_eq!(a.len(), 2);
        let mut json = String::new();
        std::io::Read::read_to_string(&mut a.by_name("subject.json").expect("json"), &mut json)
            .expect("read");
        assert_eq!(json, "{}");
    }
}
