//! PDF, A4: the meeting's details on the first page, a running title on the others,
//! "page N of M" at the foot of each; every segment with its time and speaker, then
//! its text wrapped to the page. NanumGothic (Hangul and Latin, SIL OFL) is embedded
//! in the binary and each file carries only the glyphs it uses, with the map that
//! lets readers (and `pdftotext`) turn them back into text.

use super::{clock, date, Progress, Transcript};
use krilla::geom::Point;
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};
use krilla::Document;

static FONT: &[u8] = include_bytes!("../../fonts/NanumGothic.ttf");

const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;
const TOP: f32 = 60.0;
const BOTTOM: f32 = HEIGHT - 60.0;
const INDENT: f32 = 14.0;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the embedded font cannot be read")]
    Font,
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

/// One line as laid out: its size, where it starts, the space above it, its text.
struct Line {
    size: f32,
    x: f32,
    gap: f32,
    text: String,
}

struct Metrics<'a>(ttf_parser::Face<'a>);

impl Metrics<'_> {
    fn width(&self, s: &str, size: f32) -> f32 {
        let upm = f32::from(self.0.units_per_em());
        let units: f32 = s
            .chars()
            .map(|c| {
                self.0
                    .glyph_index(c)
                    .and_then(|g| self.0.glyph_hor_advance(g))
                    .map_or(0.5 * upm, f32::from)
            })
            .sum();
        units * size / upm
    }

    /// `text` broken into lines no wider than `max` at `size`: between words, and
    /// inside a word only when it alone is wider than a line (CJK runs, long links).
    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        let mut lines = vec![];
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if self.width(&candidate, size) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            for c in word.chars() {
                line.push(c);
                if self.width(&line, size) > max && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, c.to_string()));
                }
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }
}

/// Drawn text: no control characters.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The lines of the document, and for each page the lines on it with their baselines.
struct Layout {
    lines: Vec<Line>,
    pages: Vec<Vec<(f32, usize)>>,
    title: String,
}

/// Lays out the document, telling `progress` 0-50% as segments are measured.
fn layout(t: &Transcript, m: &Metrics, progress: Progress) -> Layout {
    let wide = WIDTH - 2.0 * MARGIN;
    let meeting = &t.meeting;
    let mut lines = vec![];
    let mut push = |size: f32, x: f32, gap: f32, text: &str| {
        for (i, l) in m
            .wrap(&printable(text), size, wide - x)
            .into_iter()
            .enumerate()
        {
            lines.push(Line {
                size,
                x,
                gap: if i == 0 { gap } else { 0.0 },
                text: l,
            });
        }
    };
    let title = if meeting.title.trim().is_empty() {
        "Untitled meeting".to_owned()
    } else {
        printable(&meeting.title)
    };
    push(17.0, 0.0, 0.0, &title);
    for detail in [
        format!("Room: {}", meeting.room),
        format!("Started: {}", date(meeting.started_at_ms)),
        format!("Duration: {}", clock(meeting.duration_s)),
        format!("Engine: {}", meeting.engines.join(", ")),
        format!("Meeting: {}", meeting.id),
    ] {
        push(9.5, 0.0, 2.0, &detail);
    }
    for (i, line) in meeting.consent.lines().iter().enumerate() {
        push(9.5, 0.0, if i == 0 { 8.0 } else { 2.0 }, line);
    }
    for line in t.generated.iter().flat_map(|g| g.lines()) {
        match line {
            super::GeneratedLine::Heading(h) => push(10.5, 0.0, 9.0, &h),
            super::GeneratedLine::Text(l) => push(9.5, INDENT, 2.0, &l),
        }
    }
    let of = t.segments.len().max(1);
    for (n, s) in t.segments.iter().enumerate() {
        if n % 64 == 0 {
            progress((n * 50 / of) as u8);
        }
        let mark = if s.edited { " · corrected" } else { "" };
        push(
            9.0,
            0.0,
            9.0,
            &format!("{}  {}{mark}", clock(s.start), s.speaker),
        );
        push(11.0, INDENT, 2.0, &s.text);
        if let Some(o) = &s.original {
            push(9.0, INDENT, 2.0, &format!("Original: {o}"));
        }
    }
    // Pages: lines until the next would pass the bottom margin.
    let mut pages: Vec<Vec<(f32, usize)>> = vec![vec![]];
    let mut y = TOP;
    for (i, l) in lines.iter().enumerate() {
        let step = l.gap + l.size * 1.35;
        if y + step > BOTTOM && pages.last().is_some_and(|p| !p.is_empty()) {
            pages.push(vec![]);
            y = TOP + 18.0;
        }
        y += step;
        if let Some(p) = pages.last_mut() {
            p.push((y, i));
        }
    }
    Layout {
        lines,
        pages,
        title,
    }
}

/// The PDF; `progress` hears 0-50% from the layout, 50-90% as pages are drawn, and
/// the rest is the fonts' subsetting and the file's writing.
pub fn pdf(t: &Transcript, progress: Progress) -> Result<Vec<u8>, PdfError> {
    let face = ttf_parser::Face::parse(FONT, 0).map_err(|_| PdfError::Font)?;
    let m = Metrics(face);
    let font = Font::new(FONT.into(), 0).ok_or(PdfError::Font)?;
    let wide = WIDTH - 2.0 * MARGIN;
    let Layout {
        lines,
        pages,
        title,
    } = layout(t, &m, progress);
    let total = pages.len();
    let running = format!("{title} · {}", date(t.meeting.started_at_ms));
    let running = m
        .wrap(&running, 8.0, wide)
        .into_iter()
        .next()
        .unwrap_or_default();
    let mut doc = Document::new();
    for (i, page_lines) in pages.iter().enumerate() {
        progress((50 + i * 40 / total.max(1)) as u8);
        let settings = PageSettings::from_wh(WIDTH, HEIGHT)
            .ok_or_else(|| PdfError::Write("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        let mut surface = page.surface();
        let mut text = |x: f32, y: f32, size: f32, s: &str| {
            surface.draw_text(
                Point::from_xy(x, y),
                font.clone(),
                size,
                s,
                false,
                TextDirection::Auto,
            );
        };
        if i > 0 {
            text(MARGIN, TOP, 8.0, &running);
        }
        for &(y, i) in page_lines {
            let l = &lines[i];
            text(MARGIN + l.x, y, l.size, &l.text);
        }
        let foot = format!("page {} of {total}", i + 1);
        text(
            WIDTH - MARGIN - m.width(&foot, 8.0),
            HEIGHT - 30.0,
            8.0,
            &foot,
        );
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| PdfError::Write(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn long_transcripts_span_numbered_pages() {
        let mut t = sample();
        let s = t.segments[0].clone();
        t.segments = (0..120)
            .map(|i| {
                let mut s = s.clone();
                s.seq = i;
                s.text = format!("segment {i} 회의를 시작합니다 {}", "word ".repeat(30));
                s
            })
            .collect();
        let m = Metrics(ttf_parser::Face::parse(FONT, 0).expect("font"));
        let l = layout(&t, &m, &|_| {});
        assert!(l.pages.len() >= 5, "{} pages", l.pages.len());
        // Every line once, in order, each within the page's margins.
        let order: Vec<usize> = l.pages.iter().flatten().map(|(_, i)| *i).collect();
        assert_eq!(order, (0..l.lines.len()).collect::<Vec<_>>());
        for (y, i) in l.pages.iter().flatten() {
            assert!(*y <= BOTTOM && *y > TOP, "baseline {y}");
            let line = &l.lines[*i];
            assert!(m.width(&line.text, line.size) + line.x <= WIDTH - 2.0 * MARGIN);
        }
        let told = std::cell::RefCell::new(vec![]);
        let bytes = pdf(&t, &|p| told.borrow_mut().push(p)).expect("pdf");
        assert!(bytes.starts_with(b"%PDF-"));
        // Progress as it went: from the start, through the pages, never backwards.
        let told = told.into_inner();
        assert_eq!(told.first(), Some(&0));
        assert!(told.windows(2).all(|w| w[0] <= w[1]), "{told:?}");
        assert!(told.iter().any(|p| (50..90).contains(p)), "{told:?}");
        // Only the glyphs used are embedded: far less than the 4.7 MB font.
        assert!(bytes.len() < 400_000, "{} bytes", bytes.len());
    }

    #[test]
    fn words_wider_than_a_line_break_between_characters() {
        let m = Metrics(ttf_parser::Face::parse(FONT, 0).expect("font"));
        let run = "가".repeat(200);
        let lines = m.wrap(&run, 11.0, 200.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), run);
        assert!(lines.iter().all(|l| m.width(l, 11.0) <= 200.0));
        assert_eq!(m.wrap("one two  three", 11.0, 500.0), ["one two three"]);
    }
}
