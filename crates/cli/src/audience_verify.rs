//! `audience verify`: reads an audience's live list from Iterable and compares it with what the
//! store says Iterable acknowledged (`sync::drift`); `--repair` stores the corrections, which
//! the service then sends. Prints the drift as text or JSON; exits 1 when drift was found and
//! not repaired.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use iterable::client::{Client, ClientConfig};
use serde_json::json;
use server::app::{open_service_store, open_store_read_only, project_of, system_clock};
use server::config::{Config, DestinationConfig, Secrets, Storage};
use sync::drift::{VerifyOptions, VerifyReport, verify};
use sync::reconciler::share_rate_budget;

use crate::verify_progress::Shower;

/// `audience verify`'s arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The service's TOML configuration.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Which destination (required when the configuration has several).
    #[arg(long, value_name = "NAME")]
    destination: Option<String>,
    /// The audience key (the list's name).
    #[arg(long, value_name = "KEY")]
    audience: String,
    /// Store the corrections: the service re-sends missing members and unsubscribes extras.
    #[arg(long)]
    repair: bool,
    /// Print the result as JSON on stdout, and progress as JSON lines on stderr.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let VerifyArgs {
        config,
        destination,
        audience,
        repair,
        json,
    } = args;
    let mut cfg =
        Config::load_with(config.as_deref(), Secrets::Optional).map_err(|e| anyhow!("{e}"))?;
    // The service checks the file at its start; a command beside it needs two connections.
    cfg.storage_quick_check = None;
    cfg.storage_pool_size = 2;
    let source = crate::choose::source_of(config.as_deref());
    let d = crate::choose::destination(&cfg, destination.as_deref(), &source)?.clone();
    if d.api_key.expose().is_empty() {
        bail!(
            "destination {:?} has no API key: the environment variable its api_key_env names \
             is not set or is empty",
            d.name
        );
    }
    check_storage(&cfg.storage)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let report = rt.block_on(async {
        let (store, client) = open(&cfg, &d).await?;
        let opts = VerifyOptions {
            destination: d.name.clone(),
            audience: audience.clone(),
            project_type: d.project_type,
            repair: *repair,
            now_ms: (system_clock())(),
        };
        let mut shower = Shower::new(*json);
        let r = verify(&store, &client, &opts, &mut |p| shower.show(p)).await;
        shower.finish();
        r.map_err(|e| anyhow!("{e}"))
    })?;
    if *json {
        println!("{}", report_json(&d.name, audience, *repair, &report));
    } else {
        print!("{}", report_text(&d.name, audience, *repair, &report));
    }
    Ok(if report.in_sync() || *repair {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A database `audience verify` can use: not in memory, and (SQLite) a file that exists.
fn check_storage(storage: &Storage) -> Result<()> {
    if matches!(storage, Storage::SqliteMemory) {
        bail!(
            "[storage] is an in-memory database (sqlite::memory:): it exists only inside the \
             running service; audience verify needs a database file or PostgreSQL"
        );
    }
    if let Storage::Sqlite { path } = storage
        && matches!(path.try_exists(), Ok(false))
    {
        bail!(
            "no database at {} (the [storage] url of the configuration): run this beside the \
             service, with the --config FILE it runs with",
            path.display()
        );
    }
    Ok(())
}

/// The store (refused if this version cannot read it as it is; never created or migrated)
/// and the destination's client, sharing the project's rate budget through the store.
async fn open(cfg: &Config, d: &DestinationConfig) -> Result<(sync::Store, Client)> {
    // Opened read-only first: a database this version cannot read as it is (missing, of an
    // older schema) is refused, never created or migrated here.
    drop(
        open_store_read_only(cfg)
            .await
            .map_err(|e| anyhow!("{e}"))?,
    );
    // Written to even without --repair: the project's shared rate budget lives there.
    let store = open_service_store(cfg).await.map_err(|e| anyhow!("{e}"))?;
    let mut cc = ClientConfig::new(d.base_url.clone(), d.api_key.clone());
    cc.timeout = d.delivery.timeout;
    cc.limits = d.delivery.rate_limits.clone();
    let client = Client::new(cc).map_err(|e| anyhow!("{e}"))?;
    // getUsers is limited to 5 a minute per project: the service's instances and this
    // command take their turns from one budget.
    share_rate_budget(
        &client,
        store.clone(),
        project_of(&d.api_key),
        system_clock(),
    );
    Ok((store, client))
}

fn report_json(destination: &str, audience: &str, repair: bool, r: &VerifyReport) -> String {
    let c = &r.counts;
    json!({
        "destination": destination,
        "audience": audience,
        "list_id": r.list_id,
        "in_sync": r.in_sync(),
        "in_iterable": c.in_iterable,
        "acknowledged": c.acknowledged,
        "pending": c.pending,
        "other_list": c.other_list,
        "missing": c.missing,
        "extra": c.extra,
        "extra_unknown": c.extra_unknown,
        "missing_samples": r.missing_samples,
        "extra_samples": r.extra_samples,
        "repair": repair.then(|| json!({"reopened": r.reopened, "unsubscribes": r.unsubscribes})),
        "bytes": r.bytes,
    })
    .to_string()
}

fn report_text(destination: &str, audience: &str, repair: bool, r: &VerifyReport) -> String {
    let c = &r.counts;
    let mut out = format!(
        "audience {audience:?} of destination {destination:?} (list {}): {} in Iterable, {} \
         acknowledged members, {} pending (not compared)\n",
        r.list_id, c.in_iterable, c.acknowledged, c.pending
    );
    if c.other_list > 0 {
        out += &format!(
            "{} keys named another list (external audience id): not compared\n",
            c.other_list
        );
    }
    if r.in_sync() {
        out += "in sync\n";
        return out;
    }
    let samples = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(": {}", v.join(", "))
        }
    };
    out += &format!(
        "missing from Iterable: {}{}\n",
        c.missing,
        samples(&r.missing_samples)
    );
    out += &format!(
        "extra in Iterable: {} ({} unknown to the store){}\n",
        c.extra,
        c.extra_unknown,
        samples(&r.extra_samples)
    );
    if repair {
        out += &format!(
            "repaired: {} keys pending again, {} unsubscribes stored; the service sends them\n",
            r.reopened, r.unsubscribes
        );
    } else {
        out += "run again with --repair to send the corrections\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync::drift::DriftCounts;

    #[test]
    fn the_text_report_names_each_kind_of_drift() {
        let r = VerifyReport {
            list_id: 7,
            counts: DriftCounts {
                in_iterable: 3,
                acknowledged: 3,
                pending: 1,
                missing: 1,
                extra: 1,
                extra_unknown: 1,
                ..DriftCounts::default()
            },
            missing_samples: vec!["b@x.co".into()],
            extra_samples: vec!["z@x.co".into()],
            ..VerifyReport::default()
        };
        assert_eq!(
            report_text("prod", "vip", false, &r),
            "audience \"vip\" of destination \"prod\" (list 7): 3 in Iterable, 3 acknowledged \
             members, 1 pending (not compared)\nmissing from Iterable: 1: b@x.co\nextra in \
             Iterable: 1 (1 unknown to the store): z@x.co\nrun again with --repair to send the \
             corrections\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&report_json("prod", "vip", true, &r)).unwrap();
        assert_eq!(v["missing"], 1);
        assert_eq!(v["in_sync"], false);
        assert_eq!(v["repair"]["reopened"], 0);
    }
}
