//! A table drawn as an SVG bar chart on the appliance: no script, no style sheet,
//! nothing loaded (the console shows it as an image, so the page's Content Security
//! Policy needs nothing new). Bars side by side or stacked, a legend, gridlines with
//! the unit's labels, and a tooltip (`<title>`) on every bar with its number. Every
//! text is escaped; more series than colours are summed into "Others".

use super::{Cell, ChartSpec, Series, Table, Unit};
use crate::export::xml_escape as esc;
use std::fmt::Write;

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 76.0;
/// The widest bar: a chart of one category is not one wall of colour.
const MAX_BAR: f64 = 64.0;
/// The Okabe–Ito colours (told apart with the common colour blindnesses); the last
/// is "Others".
const COLOURS: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999",
];
const LABEL_CHARS: usize = 14;
const LEGEND_CHARS: usize = 24;

/// The chart's data: category labels, and each series' name and values (one per
/// category).
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    pub categories: Vec<String>,
    pub series: Vec<(String, Vec<f64>)>,
}

fn joined(row: &[Cell], cols: &[usize]) -> String {
    cols.iter()
        .filter_map(|&c| row.get(c))
        .map(Cell::text)
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The table's numbers as the chart draws them.
pub fn data(t: &Table) -> Data {
    let spec = &t.chart;
    let mut categories: Vec<String> = spec.categories.clone();
    let index = |categories: &mut Vec<String>, label: String| match categories
        .iter()
        .position(|c| *c == label)
    {
        Some(i) => i,
        None => {
            categories.push(label);
            categories.len() - 1
        }
    };
    let mut series: Vec<(String, Vec<(usize, f64)>)> = vec![];
    match &spec.series {
        Series::Columns(cols) => {
            for &c in cols {
                series.push((t.columns.get(c).copied().unwrap_or("").to_owned(), vec![]));
            }
            for row in &t.rows {
                let i = index(&mut categories, joined(row, &spec.category));
                for (s, &c) in cols.iter().enumerate() {
                    let v = row.get(c).map_or(0.0, Cell::number);
                    series[s].1.push((i, v));
                }
            }
        }
        Series::Pivot { by, value } => {
            for row in &t.rows {
                let i = index(&mut categories, joined(row, &spec.category));
                let name = joined(row, by);
                let v = row.get(*value).map_or(0.0, Cell::number);
                match series.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, vals)) => vals.push((i, v)),
                    None => series.push((name, vec![(i, v)])),
                }
            }
        }
    }
    let n = categories.len();
    let mut dense: Vec<(String, Vec<f64>)> = series
        .into_iter()
        .map(|(name, vals)| {
            let mut d = vec![0.0; n];
            for (i, v) in vals {
                d[i] += v;
            }
            (name, d)
        })
        .collect();
    if dense.len() > COLOURS.len() {
        // The biggest keep their own colour; the rest are summed.
        dense.sort_by(|a, b| {
            let (sa, sb): (f64, f64) = (a.1.iter().sum(), b.1.iter().sum());
            sb.total_cmp(&sa).then(a.0.cmp(&b.0))
        });
        let rest = dense.split_off(COLOURS.len() - 1);
        let mut others = vec![0.0; n];
        for (_, vals) in rest {
            for (o, v) in others.iter_mut().zip(vals) {
                *o += v;
            }
        }
        dense.push(("Others".to_owned(), others));
    }
    Data {
        categories,
        series: dense,
    }
}

/// How an axis shows its values: hours under an hour are shown in minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shown {
    Hours,
    Minutes,
    Count,
    Share,
}

impl Shown {
    fn of(unit: Unit, max: f64) -> Self {
        match unit {
            Unit::Hours if max < 1.0 => Shown::Minutes,
            Unit::Hours => Shown::Hours,
            Unit::Count => Shown::Count,
            Unit::Share => Shown::Share,
        }
    }

    /// A value in the table's unit, in the axis' unit.
    fn scale(self, v: f64) -> f64 {
        if self == Shown::Minutes {
            v * 60.0
        } else {
            v
        }
    }

    fn label(self, v: f64, step: f64) -> String {
        let digits = usize::from(step < 1.0);
        match self {
            Shown::Share => format!("{:.0}%", v * 100.0),
            Shown::Hours => format!("{v:.digits$} h"),
            Shown::Minutes => format!("{v:.digits$} min"),
            Shown::Count => format!("{v:.0}"),
        }
    }

    fn value(self, v: f64) -> String {
        match self {
            Shown::Share => format!("{:.1}%", v * 100.0),
            Shown::Hours => format!("{v:.2} h"),
            Shown::Minutes => format!("{v:.1} min"),
            Shown::Count => format!("{v:.0}"),
        }
    }

    fn whole(self) -> bool {
        self == Shown::Count
    }
}

/// The axis' top and step: a step of 1, 2 or 5 × 10^k, at most five of them.
fn axis(max: f64, shown: Shown) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let rough = max / 5.0;
    let pow = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| max / s <= 5.0)
        .unwrap_or(10.0 * pow);
    let step = if shown.whole() { step.max(1.0) } else { step };
    ((max / step - 1e-9).ceil() * step, step)
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    } else {
        s.to_owned()
    }
}

/// The table as an SVG document.
pub fn svg(t: &Table) -> String {
    let d = data(t);
    let spec: &ChartSpec = &t.chart;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-labelledby="title" font-family="system-ui, sans-serif" font-size="12" fill="#1d2430"><title id="title">{}</title><rect width="{W}" height="{H}" fill="#ffffff"/>"##,
        esc(t.title)
    );
    let n = d.categories.len();
    let has_data = n > 0 && d.series.iter().any(|(_, v)| v.iter().any(|x| *x != 0.0));
    if !has_data {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#667085">Nothing in this range</text></svg>"##,
            W / 2.0,
            H / 2.0
        );
        return out;
    }
    let raw_max = (0..n)
        .map(|i| {
            let vals = d.series.iter().map(|(_, v)| v[i].max(0.0));
            if spec.stacked {
                vals.sum::<f64>()
            } else {
                vals.fold(0.0, f64::max)
            }
        })
        .fold(0.0, f64::max);
    let shown = Shown::of(spec.unit, raw_max);
    let (top, step) = axis(shown.scale(raw_max), shown);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let y = |v: f64| TOP + ph - (v / top * ph);
    // Gridlines and their labels.
    let mut g = 0.0;
    while g <= top + step / 2.0 {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#d0d5dd" stroke-width="1"/><text x="{}" y="{:.1}" text-anchor="end" fill="#475467">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y(g) + 4.0,
            esc(&shown.label(g, step)),
            y = y(g)
        );
        g += step;
    }
    // Legend: a swatch and the name of each series.
    let mut lx = LEFT;
    for (s, (name, _)) in d.series.iter().enumerate() {
        let name = short(name, LEGEND_CHARS);
        let _ = write!(
            out,
            r##"<rect x="{lx:.1}" y="12" width="12" height="12" fill="{}"/><text x="{:.1}" y="22">{}</text>"##,
            COLOURS[s % COLOURS.len()],
            lx + 16.0,
            esc(&name)
        );
        lx += 16.0 + 7.0 * name.chars().count() as f64 + 14.0;
    }
    // Bars, and each category's label (every k-th when they are many).
    let gw = pw / n as f64;
    let every = n.div_ceil(16).max(1);
    let bars = if spec.stacked { 1 } else { d.series.len() };
    let area = (gw * 0.8).min(MAX_BAR * bars as f64);
    // Labels that fit the space between them stand upright; longer ones lean.
    let widest = d
        .categories
        .iter()
        .map(|c| short(c, LABEL_CHARS).chars().count())
        .max()
        .unwrap_or(0);
    let upright = widest as f64 * 7.0 < gw * every as f64;
    for (i, cat) in d.categories.iter().enumerate() {
        let x0 = LEFT + gw * i as f64 + (gw - area) / 2.0;
        let mut base = 0.0;
        for (s, (name, vals)) in d.series.iter().enumerate() {
            let v = shown.scale(vals[i].max(0.0));
            let (x, w, from) = if spec.stacked {
                (x0, area, base)
            } else {
                let w = area / d.series.len() as f64;
                (x0 + w * s as f64, w, 0.0)
            };
            let h = v / top * ph;
            if h > 0.0 {
                let _ = write!(
                    out,
                    r##"<rect x="{x:.2}" y="{:.2}" width="{w:.2}" height="{h:.2}" fill="{}" data-series="{s}" data-category="{i}" data-value="{v}"><title>{}</title></rect>"##,
                    y(from + v),
                    COLOURS[s % COLOURS.len()],
                    esc(&format!("{cat} · {name}: {}", shown.value(v)))
                );
            }
            base += v;
        }
        if i % every == 0 {
            let (cx, ly) = (LEFT + gw * (i as f64 + 0.5), H - BOTTOM + 16.0);
            let placed = if upright {
                format!(r##"x="{cx:.1}" y="{ly:.1}" text-anchor="middle""##)
            } else {
                format!(
                    r##"x="{cx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-30 {cx:.1} {ly:.1})""##
                )
            };
            let _ = write!(
                out,
                r##"<text {placed} fill="#475467">{}</text>"##,
                esc(&short(cat, LABEL_CHARS))
            );
        }
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#475467" stroke-width="1"/></svg>"##,
        W - RIGHT,
        TOP + ph,
        TOP + ph
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::events::Event;

    fn table(rows: Vec<Vec<Cell>>, stacked: bool, series: Series) -> Table {
        Table {
            id: "t",
            title: "Hours <per> room",
            columns: vec!["Room", "Team", "A", "B"],
            rows,
            chart: ChartSpec {
                stacked,
                category: vec![0],
                series,
                unit: Unit::Hours,
                categories: vec![],
            },
            svg: String::new(),
        }
    }

    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    /// Every bar's (series, category, height), read back as XML (which also checks
    /// the document is well-formed).
    fn bars(svg: &str) -> Vec<(usize, usize, f64)> {
        let mut r = quick_xml::Reader::from_str(svg);
        let mut out = vec![];
        loop {
            match r.read_event().expect("well-formed SVG") {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"rect" => {
                    let get = |k: &[u8]| {
                        e.attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == k)
                            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                    };
                    if let (Some(s), Some(c), Some(h)) =
                        (get(b"data-series"), get(b"data-category"), get(b"height"))
                    {
                        out.push((s.parse().unwrap(), c.parse().unwrap(), h.parse().unwrap()));
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn bars_are_as_tall_as_their_values_side_by_side() {
        let tb = table(
            vec![
                vec![t("Ward"), t("x"), Cell::Number(1.0), Cell::Number(4.0)],
                vec![t("Clinic"), t("x"), Cell::Number(2.0), Cell::Number(0.0)],
            ],
            false,
            Series::Columns(vec![2, 3]),
        );
        let b = bars(&svg(&tb));
        // Zero draws no bar.
        assert_eq!(b.len(), 3, "{b:?}");
        let h = |s, c| b.iter().find(|x| x.0 == s && x.1 == c).unwrap().2;
        assert!((h(1, 0) / h(0, 0) - 4.0).abs() < 0.01);
        assert!((h(0, 1) / h(0, 0) - 2.0).abs() < 0.01);
    }

    #[test]
    fn stacked_bars_add_up_and_the_axis_covers_the_tallest_stack() {
        let tb = table(
            vec![
                vec![t("Ward"), t("x"), Cell::Number(3.0), Cell::Number(1.0)],
                vec![t("Clinic"), t("x"), Cell::Number(1.0), Cell::Number(1.0)],
            ],
            true,
            Series::Columns(vec![2, 3]),
        );
        let svg = svg(&tb);
        let b = bars(&svg);
        let stack = |c| b.iter().filter(|x| x.1 == c).map(|x| x.2).sum::<f64>();
        assert!((stack(0) / stack(1) - 2.0).abs() < 0.01);
        assert!(stack(0) <= H - TOP - BOTTOM + 0.01);
        assert!(svg.contains(">4 h<"), "the axis reaches 4 hours");
    }

    #[test]
    fn pivot_makes_a_series_per_value_and_fills_missing_categories_with_zero() {
        let mut tb = table(
            vec![
                vec![t("w1"), t("adverse event"), Cell::Number(2.0)],
                vec![t("w2"), t("complaint"), Cell::Number(1.0)],
            ],
            false,
            Series::Pivot {
                by: vec![1],
                value: 2,
            },
        );
        tb.chart.categories = vec!["w0".into(), "w1".into(), "w2".into()];
        let d = data(&tb);
        assert_eq!(d.categories, ["w0", "w1", "w2"]);
        assert_eq!(
            d.series,
            [
                ("adverse event".to_owned(), vec![0.0, 2.0, 0.0]),
                ("complaint".to_owned(), vec![0.0, 0.0, 1.0]),
            ]
        );
    }

    #[test]
    fn series_beyond_the_colours_are_summed_into_others() {
        let rows = (0..12)
            .map(|i| {
                vec![
                    t("w"),
                    t(&format!("p{i:02}")),
                    Cell::Number(f64::from(i + 1)),
                ]
            })
            .collect();
        let tb = table(
            rows,
            true,
            Series::Pivot {
                by: vec![1],
                value: 2,
            },
        );
        let d = data(&tb);
        assert_eq!(d.series.len(), COLOURS.len());
        assert_eq!(d.series[0].0, "p11", "the biggest first");
        let others = d.series.last().unwrap();
        assert_eq!(others.0, "Others");
        // p00..p04 are 1+2+3+4+5.
        assert_eq!(others.1, [15.0]);
        let total: f64 = d.series.iter().map(|s| s.1[0]).sum();
        assert_eq!(total, (1..=12).sum::<i32>() as f64);
    }

    #[test]
    fn text_is_escaped_never_markup() {
        let tb = table(
            vec![vec![
                t("<script>alert(1)</script>"),
                t("x"),
                Cell::Number(1.0),
                Cell::Number(1.0),
            ]],
            false,
            Series::Columns(vec![2]),
        );
        let svg = svg(&tb);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;script"));
        assert!(svg.contains("Hours &lt;per&gt; room"));
        bars(&svg);
    }

    #[test]
    fn under_an_hour_is_shown_in_minutes() {
        let tb = table(
            vec![vec![
                t("Ward"),
                t("x"),
                Cell::Number(0.25),
                Cell::Number(0.0),
            ]],
            false,
            Series::Columns(vec![2]),
        );
        let svg = svg(&tb);
        assert!(svg.contains(">15 min<"), "{svg}");
        assert!(svg.contains("Ward · A: 15.0 min"), "{svg}");
        assert!(!svg.contains(" h<"), "{svg}");
    }

    #[test]
    fn no_data_says_so() {
        let tb = table(vec![], false, Series::Columns(vec![2]));
        let svg = svg(&tb);
        assert!(svg.contains("Nothing in this range"));
        assert!(bars(&svg).is_empty());
    }

    #[test]
    fn the_axis_steps_are_round() {
        let near = |(a, b): (f64, f64), (c, d): (f64, f64)| {
            assert!((a - c).abs() < 1e-9 && (b - d).abs() < 1e-9, "{a} {b}")
        };
        near(axis(7.3, Shown::Hours), (8.0, 2.0));
        near(axis(0.4, Shown::Minutes), (0.4, 0.1));
        near(axis(1.0, Shown::Share), (1.0, 0.2));
        near(axis(3.0, Shown::Count), (3.0, 1.0));
        near(axis(130.0, Shown::Count), (150.0, 50.0));
        near(axis(0.0, Shown::Count), (1.0, 0.25));
    }
}
