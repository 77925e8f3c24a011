//! A self-contained SVG latency-by-percentile plot in the style of
//! HdrHistogram's plotter: the x axis is `log10(1 / (1 - p))`, so 0%, 90%,
//! 99%, 99.9%, ... are evenly spaced and the tail gets most of the width.
//!
//! Written by hand (no plotting dependency) so that reports render anywhere
//! markdown does and CI needs no extra tools.

use std::fmt::Write as _;

/// One line on the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSeries {
    /// Legend text.
    pub label: String,
    /// (quantile in [0, 1], latency in microseconds), ascending quantile.
    /// Points at quantile 1.0 (the maximum) cannot be placed on a
    /// `1/(1-p)` axis and are skipped.
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 44.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 56.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// Fewest and most decades of nines shown on the x axis.
const MIN_NINES: u32 = 3;
const MAX_NINES: u32 = 7;

/// Escapes text for use in SVG element content and attribute values.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters even when escaped.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The x coordinate in decades of nines: 0 at p=0, 1 at 90%, 2 at 99%, ...
fn nines(q: f64) -> f64 {
    (1.0 / (1.0 - q.clamp(0.0, 1.0 - 1e-12))).log10()
}

/// Label for a decade of nines: 0 -> "0%", 1 -> "90%", 3 -> "99.9%".
fn nines_label(n: u32) -> String {
    match n {
        0 => "0%".into(),
        1 => "90%".into(),
        n => format!("99.{}%", "9".repeat(n as usize - 2)).replace("99.%", "99%"),
    }
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about 5 ticks.
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let normalised = raw / magnitude;
    let factor = if normalised <= 1.0 {
        1.0
    } else if normalised <= 2.0 {
        2.0
    } else if normalised <= 5.0 {
        5.0
    } else {
        10.0
    };
    factor * magnitude
}

fn fmt_tick(v: f64) -> String {
    if v == v.trunc() {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The SVG header, white background and title shared by both plots.
fn open_document(s: &mut String, title: &str) {
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"  <title>{}</title>"#, escape_xml(title));
    let _ = writeln!(
        s,
        r#"  <rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"  <text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape_xml(title)
    );
}

/// The legend (one colour per series, in order) and the document's end.
fn close_document(s: &mut String, series: &[PlotSeries]) {
    let _ = writeln!(s, r#"  <g class="legend">"#);
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = TOP + 16.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"    <line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="3"/>"#,
            LEFT + 12.0,
            LEFT + 36.0
        );
        let _ = writeln!(
            s,
            r#"    <text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 42.0,
            y + 4.0,
            escape_xml(&ser.label)
        );
    }
    let _ = writeln!(s, "  </g>");
    s.push_str("</svg>\n");
}

/// Renders the plot as a complete SVG document.
pub fn percentile_plot(title: &str, series: &[PlotSeries]) -> String {
    let finite: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(q, v)| *q < 1.0 && q.is_finite() && v.is_finite())
        .collect();
    let max_nines = finite
        .iter()
        .map(|(q, _)| nines(*q).ceil() as u32)
        .max()
        .unwrap_or(0)
        .clamp(MIN_NINES, MAX_NINES);
    let max_value_us = finite.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    // Milliseconds read better once tails reach tens of milliseconds.
    let (unit, scale) = if max_value_us >= 10_000.0 {
        ("ms", 1000.0)
    } else {
        ("us", 1.0)
    };
    let y_step = nice_step(max_value_us / scale);
    let y_max = ((max_value_us / scale / y_step).ceil() * y_step).max(y_step);

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |q: f64| LEFT + plot_w * (nines(q).min(max_nines as f64) / max_nines as f64);
    let y_of = |v_us: f64| TOP + plot_h * (1.0 - (v_us / scale / y_max).clamp(0.0, 1.0));

    let mut s = String::new();
    open_document(&mut s, title);

    // Grid and axis labels.
    let _ = writeln!(
        s,
        r##"  <g class="grid" stroke="#dddddd" stroke-width="1">"##
    );
    for n in 0..=max_nines {
        let x = LEFT + plot_w * n as f64 / max_nines as f64;
        let _ = writeln!(
            s,
            r#"    <line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/>"#,
            TOP + plot_h
        );
    }
    let y_ticks = (y_max / y_step).round() as u32;
    for i in 0..=y_ticks {
        let y = TOP + plot_h * (1.0 - i as f64 / y_ticks.max(1) as f64);
        let _ = writeln!(
            s,
            r#"    <line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
            LEFT + plot_w
        );
    }
    let _ = writeln!(s, "  </g>");
    let _ = writeln!(s, r#"  <g class="x-labels" text-anchor="middle">"#);
    for n in 0..=max_nines {
        let x = LEFT + plot_w * n as f64 / max_nines as f64;
        let _ = writeln!(
            s,
            r#"    <text x="{x:.1}" y="{:.1}">{}</text>"#,
            TOP + plot_h + 18.0,
            nines_label(n)
        );
    }
    let _ = writeln!(s, "  </g>");
    let _ = writeln!(s, r#"  <g class="y-labels" text-anchor="end">"#);
    for i in 0..=y_ticks {
        let y = TOP + plot_h * (1.0 - i as f64 / y_ticks.max(1) as f64);
        let _ = writeln!(
            s,
            r#"    <text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(i as f64 * y_step)
        );
    }
    let _ = writeln!(s, "  </g>");
    let _ = writeln!(
        s,
        r#"  <text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        s,
        r#"  <text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency ({unit})</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        s,
        r#"  <rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );

    // Data lines, then the legend on top of them.
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = ser
            .points
            .iter()
            .filter(|(q, v)| *q < 1.0 && q.is_finite() && v.is_finite())
            .map(|(q, v)| format!("{:.1},{:.1}", x_of(*q), y_of(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"  <polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape_xml(&ser.label)
        );
    }
    close_document(&mut s, series);
    s
}

/// Renders latency over time: x is seconds into the run, y is latency on a
/// log10 scale (tails span decades), one line per series, where each
/// series' points are (seconds, microseconds).
pub fn time_series_plot(title: &str, series: &[PlotSeries]) -> String {
    let finite: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(t, v)| t.is_finite() && v.is_finite() && *v > 0.0)
        .collect();
    let t_max = finite.iter().map(|(t, _)| *t).fold(1.0, f64::max);
    let v_min = finite.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
    let v_max = finite.iter().map(|(_, v)| *v).fold(1.0, f64::max);
    // Whole decades of microseconds, at least one.
    let lo = if v_min.is_finite() {
        v_min.log10().floor()
    } else {
        0.0
    };
    let hi = v_max.log10().ceil().max(lo + 1.0);
    let t_step = nice_step(t_max);
    let t_top = ((t_max / t_step).ceil() * t_step).max(t_step);

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |t: f64| LEFT + plot_w * (t / t_top).clamp(0.0, 1.0);
    let y_of =
        |v: f64| TOP + plot_h * (1.0 - ((v.max(1e-9).log10() - lo) / (hi - lo)).clamp(0.0, 1.0));

    let mut s = String::new();
    open_document(&mut s, title);
    let _ = writeln!(
        s,
        r##"  <g class="grid" stroke="#dddddd" stroke-width="1">"##
    );
    let x_ticks = (t_top / t_step).round() as u32;
    for i in 0..=x_ticks {
        let x = x_of(i as f64 * t_step);
        let _ = writeln!(
            s,
            r#"    <line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/>"#,
            TOP + plot_h
        );
    }
    let decades = (hi - lo).round() as i32;
    for d in 0..=decades {
        let y = y_of(10f64.powf(lo + d as f64));
        let _ = writeln!(
            s,
            r#"    <line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
            LEFT + plot_w
        );
    }
    let _ = writeln!(s, "  </g>");
    let _ = writeln!(s, r#"  <g class="x-labels" text-anchor="middle">"#);
    for i in 0..=x_ticks {
        let _ = writeln!(
            s,
            r#"    <text x="{:.1}" y="{:.1}">{}</text>"#,
            x_of(i as f64 * t_step),
            TOP + plot_h + 18.0,
            fmt_tick(i as f64 * t_step)
        );
    }
    let _ = writeln!(s, "  </g>");
    let _ = writeln!(s, r#"  <g class="y-labels" text-anchor="end">"#);
    for d in 0..=decades {
        let v = 10f64.powf(lo + d as f64);
        let label = if v >= 1_000_000.0 {
            format!("{} s", fmt_tick(v / 1_000_000.0))
        } else if v >= 1000.0 {
            format!("{} ms", fmt_tick(v / 1000.0))
        } else {
            format!("{} us", fmt_tick(v))
        };
        let _ = writeln!(
            s,
            r#"    <text x="{:.1}" y="{:.1}">{label}</text>"#,
            LEFT - 6.0,
            y_of(v) + 4.0
        );
    }
    let _ = writeln!(s, "  </g>");
    let _ = writeln!(
        s,
        r#"  <text x="{:.1}" y="{:.1}" text-anchor="middle">seconds after the warmup</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        s,
        r#"  <text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency (log scale)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        s,
        r#"  <rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
    );
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = ser
            .points
            .iter()
            .filter(|(t, v)| t.is_finite() && v.is_finite() && *v > 0.0)
            .map(|(t, v)| format!("{:.1},{:.1}", x_of(*t), y_of(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"  <polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape_xml(&ser.label)
        );
    }
    close_document(&mut s, series);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_steps() {
        assert_eq!(nines_label(0), "0%");
        assert_eq!(nines_label(1), "90%");
        assert_eq!(nines_label(2), "99%");
        assert_eq!(nines_label(5), "99.999%");
        assert_eq!(nice_step(1000.0), 200.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn plot_is_well_formed_xml_with_one_line_per_series() {
        let series = vec![
            PlotSeries {
                label: "A <baseline> & co".into(),
                points: vec![
                    (0.0, 10.0),
                    (0.9, 20.0),
                    (0.99, 40.0),
                    (0.99999, 90.0),
                    (1.0, 120.0),
                ],
            },
            PlotSeries {
                label: "B".into(),
                points: vec![(0.0, 12.0), (0.5, 15.0), (0.999, 60_000.0)],
            },
        ];
        let svg = percentile_plot("p \"quoted\"", &series);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let lines: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .collect();
        assert_eq!(lines.len(), 2);
        // The 1.0 quantile is skipped, leaving four points in the first series.
        assert_eq!(
            lines[0].attribute("points").map(|p| p.split(' ').count()),
            Some(4)
        );
        let texts: Vec<&str> = root.descendants().filter_map(|n| n.text()).collect();
        for label in [
            "0%",
            "90%",
            "99%",
            "99.9%",
            "99.99%",
            "99.999%",
            "latency (ms)",
            "A <baseline> & co",
        ] {
            assert!(texts.contains(&label), "missing {label}: {texts:?}");
        }
    }

    #[test]
    fn empty_plot_is_still_valid() {
        let svg = percentile_plot("empty", &[]);
        assert!(roxmltree::Document::parse(&svg).is_ok());
    }

    #[test]
    fn time_series_plot_has_decade_labels_and_one_line_per_series() {
        let series = vec![
            PlotSeries {
                label: "publish p99".into(),
                points: vec![(0.0, 900.0), (1.0, 1200.0), (2.0, 250_000.0)],
            },
            PlotSeries {
                label: "publish max".into(),
                points: vec![(0.0, 2000.0), (1.0, 0.0), (2.0, 1_500_000.0)],
            },
        ];
        let svg = time_series_plot("over time", &series);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let lines: Vec<_> = doc
            .root_element()
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .collect();
        assert_eq!(lines.len(), 2);
        // A zero cannot sit on a log axis and is skipped.
        assert_eq!(
            lines[1].attribute("points").map(|p| p.split(' ').count()),
            Some(2)
        );
        let texts: Vec<&str> = doc
            .root_element()
            .descendants()
            .filter_map(|n| n.text())
            .collect();
        for label in ["100 us", "1 ms", "10 ms", "100 ms", "1 s", "10 s"] {
            assert!(texts.contains(&label), "missing {label}: {texts:?}");
        }
        assert!(roxmltree::Document::parse(&time_series_plot("empty", &[])).is_ok());
    }
}
