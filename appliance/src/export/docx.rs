//! DOCX (Office Open XML, as Word, LibreOffice and Google Docs open it): a zip of
//! four parts written by hand, since WordprocessingML needs little for a transcript —
//! a title, the meeting's details, then one paragraph per segment (time, speaker in
//! bold, text; a corrected segment marked, with its original in a paragraph of its
//! own when asked for) and "page N of M" in the footer. Deterministic: every zip
//! entry carries the same fixed time.

use super::{clock, date, one_line, Transcript};
use std::fmt::Write as _;
use std::io::Write as _;
use zip::write::SimpleFileOptions;

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override PartName="/word/footer1.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.footer+xml"/></Types>"#;

const PACKAGE_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

const DOCUMENT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rIdFooter" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footer" Target="footer1.xml"/></Relationships>"#;

const W: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";
const R: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

/// Text as XML character data: markup escaped, and the characters XML 1.0 cannot
/// hold at all (control characters) dropped.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A run of text with its properties (`<w:b/>`, a size in half-points, a colour).
fn run(props: &str, text: &str) -> String {
    format!("<w:r><w:rPr>{props}</w:rPr><w:t xml:space=\"preserve\">{text}</w:t></w:r>")
}

fn paragraph(space_before: u32, runs: &str) -> String {
    format!(
        "<w:p><w:pPr><w:spacing w:before=\"{space_before}\" w:after=\"0\"/></w:pPr>{runs}</w:p>"
    )
}

fn document(t: &Transcript) -> String {
    let m = &t.meeting;
    let title = if m.title.trim().is_empty() {
        "Untitled meeting"
    } else {
        &m.title
    };
    let mut body = paragraph(0, &run("<w:b/><w:sz w:val=\"34\"/>", &esc(title)));
    for (k, v) in [
        ("Room", esc(&m.room)),
        ("Started", date(m.started_at_ms)),
        ("Duration", clock(m.duration_s)),
        ("Engine", esc(&m.engines.join(", "))),
        ("Meeting", esc(&m.id)),
    ] {
        body.push_str(&paragraph(
            40,
            &format!(
                "{}{}",
                run(
                    "<w:color w:val=\"667085\"/><w:sz w:val=\"19\"/>",
                    &format!("{k}: ")
                ),
                run("<w:sz w:val=\"19\"/>", &v)
            ),
        ));
    }
    let muted = "<w:color w:val=\"667085\"/><w:sz w:val=\"18\"/>";
    for line in m.consent.lines() {
        body.push_str(&paragraph(40, &run(muted, &esc(&line))));
    }
    for line in t.generated.iter().flat_map(|g| g.lines()) {
        body.push_str(&match line {
            super::GeneratedLine::Heading(h) => paragraph(
                80,
                &run(
                    "<w:b/><w:color w:val=\"1F4E79\"/><w:sz w:val=\"20\"/>",
                    &esc(&h),
                ),
            ),
            super::GeneratedLine::Text(l) => paragraph(40, &run(muted, &esc(&l))),
        });
    }
    for s in &t.segments {
        let mut runs = run(muted, &format!("{}  ", clock(s.start)));
        runs.push_str(&run("<w:b/><w:color w:val=\"1F4E79\"/>", &esc(&s.speaker)));
        runs.push_str(&run("", &format!(": {}", esc(&s.text))));
        if s.edited {
            runs.push_str(&run(
                "<w:i/><w:color w:val=\"1A7F37\"/><w:sz w:val=\"18\"/>",
                " (corrected)",
            ));
        }
        body.push_str(&paragraph(160, &runs));
        if let Some(o) = &s.original {
            body.push_str(&paragraph(
                20,
                &run(
                    "<w:i/><w:color w:val=\"667085\"/><w:sz w:val=\"18\"/>",
                    &format!("Original: {}", esc(o)),
                ),
            ));
        }
    }
    // A4, 2 cm margins, the footer on every page.
    let _ = write!(
        body,
        "<w:sectPr><w:footerReference w:type=\"default\" r:id=\"rIdFooter\"/>\
<w:pgSz w:w=\"11906\" w:h=\"16838\"/><w:pgMar w:top=\"1134\" w:right=\"1134\" w:bottom=\"1134\" \
w:left=\"1134\" w:header=\"567\" w:footer=\"567\" w:gutter=\"0\"/></w:sectPr>"
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<w:document xmlns:w=\"{W}\" xmlns:r=\"{R}\"><w:body>{body}</w:body></w:document>"
    )
}

/// "page N of M" from Word's PAGE and NUMPAGES fields.
fn footer() -> String {
    let field = |name: &str| {
        format!(
            "<w:r><w:fldChar w:fldCharType=\"begin\"/></w:r><w:r><w:instrText xml:space=\"preserve\"> {name} </w:instrText></w:r>\
<w:r><w:fldChar w:fldCharType=\"separate\"/></w:r><w:r><w:t>1</w:t></w:r><w:r><w:fldChar w:fldCharType=\"end\"/></w:r>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<w:ftr xmlns:w=\"{W}\" xmlns:r=\"{R}\"><w:p><w:pPr><w:jc w:val=\"right\"/></w:pPr>\
<w:r><w:t xml:space=\"preserve\">page </w:t></w:r>{}<w:r><w:t xml:space=\"preserve\"> of </w:t></w:r>{}</w:p></w:ftr>",
        field("PAGE"),
        field("NUMPAGES")
    )
}

#[derive(Debug, thiserror::Error)]
#[error("writing the DOCX: {0}")]
pub struct DocxError(String);

pub fn docx(t: &Transcript) -> Result<Vec<u8>, DocxError> {
    let fail = |e: &dyn std::fmt::Display| DocxError(e.to_string());
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    // A fixed time (the zip epoch): the same transcript gives the same bytes.
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, part) in [
        ("[Content_Types].xml", CONTENT_TYPES.to_owned()),
        ("_rels/.rels", PACKAGE_RELS.to_owned()),
        ("word/_rels/document.xml.rels", DOCUMENT_RELS.to_owned()),
        ("word/document.xml", document(t)),
        ("word/footer1.xml", footer()),
    ] {
        zip.start_file(name, options).map_err(|e| fail(&e))?;
        zip.write_all(part.as_bytes()).map_err(|e| fail(&e))?;
    }
    Ok(zip.finish().map_err(|e| fail(&e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn text_is_escaped_and_control_characters_dropped() {
        assert_eq!(
            esc("a <b> & \"c\"\u{1}\nd"),
            "a &lt;b&gt; &amp; &quot;c&quot; d"
        );
        let d = document(&sample());
        assert!(d.contains("Dr. Kim &lt;ward 4&gt;"), "{d}");
        assert!(!d.contains("<b>not bold</b>"));
        assert!(d.contains("Original: 회의 시작 합니다"));
        assert!(d.contains(" (corrected)"));
    }

    #[test]
    fn the_package_holds_its_parts() {
        let bytes = docx(&sample()).expect("docx");
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
        let names: Vec<String> = zip
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .collect();
        for part in [
            "[Content_Types].xml",
            "word/document.xml",
            "word/footer1.xml",
        ] {
            assert!(names.iter().any(|n| n == part), "{names:?}");
        }
        let mut doc = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("word/document.xml").expect("document"),
            &mut doc,
        )
        .expect("utf-8");
        assert!(doc.contains("회의를 시작합니다"));
        assert!(doc.contains("Action items — generated"));
        assert!(doc.contains("Send the &lt;minutes&gt;"));
    }
}
