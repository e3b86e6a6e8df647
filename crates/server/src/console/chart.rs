//! A small line chart drawn on the server: one or more series of numbers → an inline `<svg>`
//! (no script, no image request), with its largest value as the scale and a `<title>` for
//! screen readers and hover. Colours come from the stylesheet (`.s0`, `.s1`, ...), since the
//! Content-Security-Policy allows no inline styles.

use maud::{Markup, html};

/// One line of a chart.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [f64],
}

const WIDTH: f64 = 240.0;
const HEIGHT: f64 = 48.0;
const PAD: f64 = 2.0;

/// The chart of `series`, all on one scale from 0 to their largest value; `title` says what it
/// shows (e.g. "events per minute, last hour").
pub(crate) fn line_chart(title: &str, series: &[Series<'_>]) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let legend: Vec<String> = series
        .iter()
        .map(|s| {
            let last = s.points.last().copied().unwrap_or(0.0);
            format!("{} (now {})", s.name, super::format::short(last))
        })
        .collect();
    let label = format!(
        "{title}: {}; peak {}",
        legend.join(", "),
        super::format::short(max)
    );
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
                width=(WIDTH) height=(HEIGHT) role="img" aria-label=(label) {
                title { (label) }
                line.axis x1="0" y1=(HEIGHT - PAD) x2=(WIDTH) y2=(HEIGHT - PAD) {}
                @for (i, s) in series.iter().enumerate() {
                    polyline class=(format!("s{}", i % 4)) fill="none" points=(points(s.points, max)) {}
                }
            }
            figcaption {
                @for (i, s) in series.iter().enumerate() {
                    span class=(format!("key s{}", i % 4)) { (s.name) }
                    " "
                }
                @if series.iter().all(|s| s.points.is_empty()) {
                    span.empty { "no samples yet (one a minute)" }
                } @else {
                    span.peak { "peak " (super::format::short(max)) }
                }
            }
        }
    }
}

/// The `points` attribute of a series: spread over the width, scaled to `max`.
fn points(values: &[f64], max: f64) -> String {
    let n = values.len();
    let step = if n > 1 { WIDTH / (n - 1) as f64 } else { 0.0 };
    let scale = if max > 0.0 {
        (HEIGHT - 2.0 * PAD) / max
    } else {
        0.0
    };
    let mut out = String::with_capacity(n * 12);
    for (i, v) in values.iter().enumerate() {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let x = i as f64 * step;
        let y = HEIGHT - PAD - v * scale;
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{x:.1},{y:.1}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_scaled_to_the_largest_value() {
        assert_eq!(
            points(&[0.0, 2.0, 4.0], 4.0),
            "0.0,46.0 120.0,24.0 240.0,2.0"
        );
        assert_eq!(points(&[], 0.0), "");
        assert_eq!(points(&[3.0], 0.0), "0.0,46.0");
        assert_eq!(points(&[f64::NAN, -1.0], 1.0), "0.0,46.0 240.0,46.0");
    }

    #[test]
    fn a_chart_is_an_svg_with_a_title() {
        let html = line_chart(
            "events per minute",
            &[
                Series {
                    name: "ingested",
                    points: &[1.0, 2.0],
                },
                Series {
                    name: "<delivered>",
                    points: &[0.0, 1.0],
                },
            ],
        )
        .into_string();
        assert!(html.contains("<svg"), "{html}");
        assert!(html.contains("polyline class=\"s1\""), "{html}");
        assert!(html.contains("&lt;delivered&gt;"), "{html}");
        assert!(!html.contains("<delivered>"), "{html}");
        assert!(html.contains("peak 2"), "{html}");
    }
}
