//! Progress of `audience verify` on standard error: a bar with rate and ETA on a terminal (a
//! spinner with the rate while the total is unknown), a plain line every [`PLAIN_EVERY`]
//! otherwise, and one JSON object per line with `--json`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sync::drift::{Phase, Progress};

/// How often a plain or JSON progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// What a phase counts.
fn unit(phase: Phase) -> &'static str {
    match phase {
        Phase::Reading => "identifiers",
        Phase::Comparing => "keys",
        Phase::Repairing => "corrections",
    }
}

/// A plain line: `audience verify: reading: 120000/1000000 identifiers (12%), 45000/s, ETA 20 s`.
pub fn plain_line(p: &Progress, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        p.done as f64 / secs
    } else {
        0.0
    };
    let of = match p.total {
        Some(total) => {
            let percent = (p.done * 100).checked_div(total).unwrap_or(100).min(100);
            let eta = if rate > 0.0 {
                format!("{:.0} s", total.saturating_sub(p.done) as f64 / rate)
            } else {
                "unknown".into()
            };
            format!(
                "/{total} {} ({percent}%), {rate:.0}/s, ETA {eta}",
                unit(p.phase)
            )
        }
        None => format!(" {}, {rate:.0}/s", unit(p.phase)),
    };
    format!("audience verify: {}: {}{of}", p.phase.word(), p.done)
}

/// A JSON progress line.
pub fn json_line(p: &Progress, elapsed: Duration) -> String {
    serde_json::json!({
        "phase": p.phase.word(),
        "done": p.done,
        "total": p.total,
        "elapsed_ms": elapsed.as_millis() as u64,
    })
    .to_string()
}

/// Shows progress on standard error.
pub enum Shower {
    Bar {
        bar: Option<(Phase, ProgressBar)>,
    },
    Lines {
        json: bool,
        /// When the current phase started, and the last line.
        phase: Option<(Phase, Instant)>,
        last: Option<Instant>,
    },
}

impl Shower {
    pub fn new(json: bool) -> Self {
        if !json && std::io::stderr().is_terminal() {
            Shower::Bar { bar: None }
        } else {
            Shower::Lines {
                json,
                phase: None,
                last: None,
            }
        }
    }

    pub fn show(&mut self, p: Progress) {
        match self {
            Shower::Bar { bar } => {
                if bar.as_ref().is_none_or(|(ph, _)| *ph != p.phase) {
                    if let Some((_, b)) = bar.take() {
                        b.finish();
                    }
                    *bar = Some((p.phase, new_bar(&p)));
                }
                if let Some((_, b)) = bar {
                    if let Some(t) = p.total {
                        b.set_length(t.max(p.done));
                    }
                    b.set_position(p.done);
                }
            }
            Shower::Lines { json, phase, last } => {
                let started = match phase {
                    Some((ph, at)) if *ph == p.phase => *at,
                    _ => {
                        *phase = Some((p.phase, Instant::now()));
                        *last = None;
                        Instant::now()
                    }
                };
                let finished = p.total == Some(p.done);
                if finished || last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                    *last = Some(Instant::now());
                    let line = if *json {
                        json_line(&p, started.elapsed())
                    } else {
                        plain_line(&p, started.elapsed())
                    };
                    eprintln!("{line}");
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Shower::Bar { bar } = self
            && let Some((_, b)) = bar.take()
        {
            b.finish();
        }
    }
}

fn new_bar(p: &Progress) -> ProgressBar {
    let target = ProgressDrawTarget::stderr();
    let (b, template) = match p.total {
        Some(t) => (
            ProgressBar::with_draw_target(Some(t), target),
            "{msg:>10} [{bar:30}] {human_pos}/{human_len} {prefix}, {per_sec:0}, ETA {eta}",
        ),
        None => (
            ProgressBar::with_draw_target(None, target),
            "{msg:>10} {spinner} {human_pos} {prefix}, {per_sec:0}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(p.phase.word());
    b.set_prefix(unit(p.phase));
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json_lines_say_rate_and_eta() {
        let p = Progress {
            phase: Phase::Reading,
            done: 250,
            total: Some(1000),
        };
        assert_eq!(
            plain_line(&p, Duration::from_secs(5)),
            "audience verify: reading: 250/1000 identifiers (25%), 50/s, ETA 15 s"
        );
        let walking = Progress {
            phase: Phase::Comparing,
            done: 100,
            total: None,
        };
        assert_eq!(
            plain_line(&walking, Duration::from_secs(2)),
            "audience verify: comparing: 100 keys, 50/s"
        );
        assert_eq!(
            json_line(&walking, Duration::from_millis(1500)),
            r#"{"phase":"comparing","done":100,"total":null,"elapsed_ms":1500}"#
        );
        let estimate_passed = Progress {
            phase: Phase::Reading,
            done: 12,
            total: Some(10),
        };
        assert!(plain_line(&estimate_passed, Duration::ZERO).contains("(100%)"));
    }
}
