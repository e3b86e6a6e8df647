//! Which destination of the configuration a command acts on: the one named by
//! `--destination`, or the only one; with a message naming the choices otherwise.

use std::path::Path;

use anyhow::{Context, Result, bail};
use server::config::{Config, DestinationConfig};

/// How messages name the configuration: its file, or the embedded one.
pub fn source_of(config: Option<&Path>) -> String {
    config.map_or_else(
        || "the embedded configuration".to_string(),
        |p| p.display().to_string(),
    )
}

/// The destination named `name`, or the configuration's only one.
pub fn destination<'c>(
    cfg: &'c Config,
    name: Option<&str>,
    source: &str,
) -> Result<&'c DestinationConfig> {
    let names = || {
        cfg.destinations
            .iter()
            .map(|d| format!("{:?}", d.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(match (name, cfg.destinations.as_slice()) {
        (Some(n), all) => all.iter().find(|d| d.name == n).with_context(|| {
            format!(
                "--destination: no destination named {n:?} in {source}; it has: {}",
                names()
            )
        })?,
        (None, [one]) => one,
        (None, []) => bail!("{source} has no destination"),
        (None, _) => bail!(
            "{source} has several destinations ({}); choose one with --destination NAME",
            names()
        ),
    })
}
