//! The Iterable emulator, in this process: started seeded (the same list ids in every run),
//! rate limits off unless a part sets one, and read back for the members it holds.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use iterable::client::{ApiKey, Client, ClientConfig};
use iterable::limiter::{Endpoint, Limit};
use iterable_emulator::config::LimitValue;
use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType, RunningEmulator};

use crate::events::{Audience, audiences};
use crate::harness::KEY;

/// A fresh emulator with one hybrid project (key [`KEY`]), limits off except a subscribe
/// limit of `subscribe_limit` requests per second when given.
pub async fn emulator(subscribe_limit: Option<u32>) -> Result<RunningEmulator> {
    let mut ec =
        EmulatorConfig::default().with_project(ProjectConfig::new(ProjectType::Hybrid, KEY));
    ec.listen = "127.0.0.1:0".parse()?;
    // The same list ids in every run (the comparison gives all sides the same events).
    ec.seed = Some(1);
    let limit = |s: &str| -> Result<LimitValue> {
        Ok(LimitValue(s.parse().map_err(|e| anyhow!("{e:?}"))?))
    };
    ec.limits.insert("all".into(), limit("off")?);
    if let Some(r) = subscribe_limit {
        // A burst of 2: one request of tolerance, so that a request delayed on its way (by
        // scheduling on this shared 2-core machine) does not make the next one, sent on
        // time, look early. With a burst of 1, two schedules at the same rate collide on
        // every millisecond of jitter.
        ec.limits
            .insert("subscribe".into(), limit(&format!("{r}/s,burst=2"))?);
    }
    Emulator::start(ec).await.map_err(|e| anyhow!("{e}"))
}

/// An Iterable client of the emulator's project.
pub fn client(base_url: &str) -> Result<Client> {
    Client::new(ClientConfig::new(base_url, ApiKey::new(KEY))).map_err(|e| anyhow!("{e}"))
}

/// An Iterable client of the emulator's project that sends subscribe and unsubscribe calls
/// as soon as it is asked, as Segment's action does. The client's default for these calls is
/// adaptive (start at 20 requests/s, double every second until a 429): right for an unknown
/// Iterable project, but a one-at-a-time sender of 100 requests then spends most of a
/// two-second run waiting for its own limiter.
pub fn unlimited_client(base_url: &str) -> Result<Client> {
    let mut config = ClientConfig::new(base_url, ApiKey::new(KEY));
    config.limits.insert(Endpoint::Subscribe, Limit::Unlimited);
    config
        .limits
        .insert(Endpoint::Unsubscribe, Limit::Unlimited);
    Client::new(config).map_err(|e| anyhow!("{e}"))
}

/// A fresh emulator with the lists of the bench audiences already created, as Segment's
/// createAudience hook creates them before its destination sends (events then name their
/// list in `external_audience_id`). The ids are the same in every fresh emulator (seeded).
pub async fn emulator_with_lists() -> Result<(RunningEmulator, Vec<Audience>)> {
    let emu = emulator(None).await?;
    let c = client(&emu.url())?;
    let mut lists = Vec::new();
    for (name, _) in audiences() {
        let id = c.create_list(&name).await.map_err(|e| anyhow!("{e}"))?;
        lists.push((name, Some(id)));
    }
    Ok((emu, lists))
}

/// Members of every list in the emulator.
pub fn members(emu: &RunningEmulator) -> usize {
    emu.state(false)
        .iter()
        .flat_map(|p| p.lists.iter())
        .map(|l| l.size)
        .sum()
}

/// Waits until the emulator's lists hold `n` members; the moment they did.
pub async fn wait_members(emu: &RunningEmulator, n: usize, limit: Duration) -> Result<Instant> {
    let start = Instant::now();
    loop {
        let m = members(emu);
        if m >= n {
            return Ok(Instant::now());
        }
        if start.elapsed() > limit {
            bail!(
                "the emulator holds {m} of {n} members after {} s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
