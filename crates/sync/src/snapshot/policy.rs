//! Whether a snapshot's diff may be applied: not when it would remove more than a share of the
//! audience's current members (unless overridden), nor when too many of its rows were bad.
//! Pure: the engines call [`Policy::check`] on the diff they computed, before committing.

use serde_json::{Value, json};

/// The rules a snapshot is applied under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Compute and report only; write nothing.
    pub dry_run: bool,
    /// The destination's `max_removal_ratio`: the largest share of current members a snapshot
    /// may remove.
    pub max_removal_ratio: f64,
    /// Apply even beyond `max_removal_ratio`.
    pub allow_mass_removal: bool,
    /// The largest share of the file's rows that may be bad (unusable or repeated).
    pub max_bad_ratio: f64,
}

/// The default `max_bad_ratio`: 1% of the rows.
pub const DEFAULT_MAX_BAD_RATIO: f64 = 0.01;

impl Default for Policy {
    fn default() -> Self {
        Self {
            dry_run: false,
            max_removal_ratio: 0.25,
            allow_mass_removal: false,
            max_bad_ratio: DEFAULT_MAX_BAD_RATIO,
        }
    }
}

/// Why a snapshot was not applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    MassRemoval {
        removes: u64,
        current_members: u64,
        max_ratio: f64,
    },
    TooManyBadRows {
        bad_rows: u64,
        rows: u64,
        max_ratio: f64,
    },
}

impl Refusal {
    /// A machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::MassRemoval { .. } => "mass_removal",
            Refusal::TooManyBadRows { .. } => "too_many_bad_rows",
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = match *self {
            Refusal::MassRemoval {
                removes,
                current_members,
                max_ratio,
            } => json!({"removes": removes, "currentMembers": current_members,
                        "maxRemovalRatio": max_ratio}),
            Refusal::TooManyBadRows {
                bad_rows,
                rows,
                max_ratio,
            } => json!({"badRows": bad_rows, "rows": rows, "maxBadRatio": max_ratio}),
        };
        v["code"] = self.code().into();
        v["message"] = self.to_string().into();
        v
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Refusal::MassRemoval {
                removes,
                current_members,
                max_ratio,
            } => write!(
                f,
                "the snapshot would remove {removes} of the audience's {current_members} current \
                 members ({:.1}%), more than max_removal_ratio {max_ratio} ({:.1}%); nothing was \
                 applied. Check the snapshot, or apply it anyway with --allow-mass-removal \
                 (HTTP: ?allow_mass_removal=true)",
                percent(removes, current_members),
                max_ratio * 100.0
            ),
            Refusal::TooManyBadRows {
                bad_rows,
                rows,
                max_ratio,
            } => write!(
                f,
                "{bad_rows} of the snapshot's {rows} rows are bad ({:.1}%), more than the allowed \
                 share {max_ratio} ({:.1}%); nothing was applied. Fix the rows (see their lines), \
                 or raise --max-bad-ratio (HTTP: ?max_bad_ratio=)",
                percent(bad_rows, rows),
                max_ratio * 100.0
            ),
        }
    }
}

/// The figures [`Policy::check`] decides on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Every row of the file (good, bad and repeated).
    pub rows: u64,
    /// Bad and repeated rows.
    pub bad_rows: u64,
    pub current_members: u64,
    /// Exits the snapshot would make.
    pub removes: u64,
}

impl Policy {
    /// Why the diff must not be applied, if it must not. Bad rows are checked first: a file
    /// with many unusable rows would also look like a mass removal.
    pub fn check(&self, f: &Figures) -> Option<Refusal> {
        if f.bad_rows > 0 && f.bad_rows as f64 > self.max_bad_ratio * f.rows as f64 {
            return Some(Refusal::TooManyBadRows {
                bad_rows: f.bad_rows,
                rows: f.rows,
                max_ratio: self.max_bad_ratio,
            });
        }
        if !self.allow_mass_removal
            && f.removes > 0
            && f.removes as f64 > self.max_removal_ratio * f.current_members as f64
        {
            return Some(Refusal::MassRemoval {
                removes: f.removes,
                current_members: f.current_members,
                max_ratio: self.max_removal_ratio,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_and_the_bad_share_decide_as_documented() {
        let p = Policy::default();
        let fig = |rows, bad_rows, current_members, removes| Figures {
            rows,
            bad_rows,
            current_members,
            removes,
        };
        let allow = Policy {
            allow_mass_removal: true,
            ..p
        };
        // (policy, figures, refusal code)
        let cases = [
            (p, fig(100, 0, 100, 25), None),
            (p, fig(100, 0, 100, 26), Some("mass_removal")),
            (p, fig(0, 0, 100, 100), Some("mass_removal")),
            (allow, fig(0, 0, 100, 100), None),
            (p, fig(100, 0, 0, 0), None),
            (p, fig(1000, 10, 100, 0), None),
            (p, fig(1000, 11, 100, 0), Some("too_many_bad_rows")),
            // Bad rows are refused even with the removal override.
            (allow, fig(10, 5, 100, 100), Some("too_many_bad_rows")),
            (
                Policy {
                    max_removal_ratio: 0.0,
                    ..p
                },
                fig(10, 0, 100, 1),
                Some("mass_removal"),
            ),
            (
                Policy {
                    max_removal_ratio: 1.0,
                    ..p
                },
                fig(0, 0, 100, 100),
                None,
            ),
        ];
        for (policy, figures, want) in cases {
            assert_eq!(
                policy.check(&figures).map(|r| r.code()),
                want,
                "{policy:?} {figures:?}"
            );
        }
    }

    #[test]
    fn the_refusal_gives_the_numbers() {
        let r = Refusal::MassRemoval {
            removes: 900,
            current_members: 1000,
            max_ratio: 0.25,
        };
        let text = r.to_string();
        assert!(
            text.contains("remove 900 of the audience's 1000 current members (90.0%)")
                && text.contains("max_removal_ratio 0.25 (25.0%)")
                && text.contains("--allow-mass-removal"),
            "{text}"
        );
        assert_eq!(r.to_json()["currentMembers"], 1000);
    }
}
