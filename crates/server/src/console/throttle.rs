//! Sign-in attempts, limited so that the admin token cannot be guessed fast: each client
//! network (an IPv4 address, an IPv6 /64) may fail [`PEER_FAILURES`] times a minute, and all
//! clients together [`ALL_FAILURES`] times a minute (a guesser with many addresses). The table
//! of networks holds at most [`MAX_PEERS`]; when it is full, new networks count against the
//! shared limit only. One network's limit does not keep another out; the shared one, once
//! reached, makes everyone wait out the minute: the price of keeping a guesser with many
//! addresses slow.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Failed sign-ins a client network may make in a [`WINDOW_MS`].
pub(crate) const PEER_FAILURES: u32 = 5;
/// Failed sign-ins all clients together may make in a [`WINDOW_MS`].
pub(crate) const ALL_FAILURES: u32 = 60;
/// The window the limits count in (a minute).
pub(crate) const WINDOW_MS: i64 = 60_000;
/// Client networks tracked at most.
pub(crate) const MAX_PEERS: usize = 4096;

#[derive(Default, Clone, Copy)]
struct Window {
    start_ms: i64,
    failures: u32,
}

impl Window {
    fn current(&mut self, now_ms: i64) -> &mut Self {
        if now_ms.saturating_sub(self.start_ms) >= WINDOW_MS {
            *self = Window {
                start_ms: now_ms,
                failures: 0,
            };
        }
        self
    }

    fn wait_s(&self, now_ms: i64) -> u64 {
        let left = (self.start_ms + WINDOW_MS).saturating_sub(now_ms).max(0) as u64;
        left.div_ceil(1000).max(1)
    }
}

#[derive(Default)]
struct Table {
    peers: HashMap<IpAddr, Window>,
    all: Window,
}

/// The sign-in limiter.
#[derive(Default)]
pub(crate) struct Throttle {
    table: Mutex<Table>,
}

impl Throttle {
    /// `Err(seconds to wait)` when `peer` may not try now.
    pub(crate) fn check(&self, peer: IpAddr, now_ms: i64) -> Result<(), u64> {
        let net = network(peer);
        let mut t = self.lock();
        let all = t.all.current(now_ms);
        if all.failures >= ALL_FAILURES {
            return Err(all.wait_s(now_ms));
        }
        if let Some(w) = t.peers.get_mut(&net) {
            let w = w.current(now_ms);
            if w.failures >= PEER_FAILURES {
                return Err(w.wait_s(now_ms));
            }
        }
        Ok(())
    }

    /// Counts a failed attempt of `peer`.
    pub(crate) fn failed(&self, peer: IpAddr, now_ms: i64) {
        let net = network(peer);
        let mut t = self.lock();
        t.all.current(now_ms).failures += 1;
        if !t.peers.contains_key(&net) && t.peers.len() >= MAX_PEERS {
            t.peers
                .retain(|_, w| now_ms.saturating_sub(w.start_ms) < WINDOW_MS);
            if t.peers.len() >= MAX_PEERS {
                return;
            }
        }
        t.peers
            .entry(net)
            .or_insert(Window {
                start_ms: now_ms,
                failures: 0,
            })
            .current(now_ms)
            .failures += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The network a client is counted as: its IPv4 address, or the /64 of its IPv6 one (one
/// host usually has a whole /64).
fn network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_client_waits_after_too_many_failures() {
        let t = Throttle::default();
        let a = ip("10.0.0.1");
        for _ in 0..PEER_FAILURES {
            assert!(t.check(a, 0).is_ok());
            t.failed(a, 0);
        }
        assert_eq!(t.check(a, 1_000), Err(59));
        assert!(t.check(ip("10.0.0.2"), 1_000).is_ok(), "another client");
        assert!(t.check(a, WINDOW_MS).is_ok(), "a minute later");
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64() {
        let t = Throttle::default();
        for i in 0..PEER_FAILURES {
            t.failed(ip(&format!("2001:db8::{i}")), 0);
        }
        assert!(t.check(ip("2001:db8::ffff"), 0).is_err());
        assert!(t.check(ip("2001:db8:0:1::1"), 0).is_ok());
        t.failed(ip("::ffff:10.1.1.1"), 0);
        assert_eq!(network(ip("::ffff:10.1.1.1")), ip("10.1.1.1"));
    }

    #[test]
    fn many_clients_share_one_limit() {
        let t = Throttle::default();
        for i in 0..ALL_FAILURES {
            t.failed(ip(&format!("10.1.{}.{}", i / 200, i % 200)), 0);
        }
        assert!(t.check(ip("192.168.1.1"), 0).is_err());
        assert!(t.check(ip("192.168.1.1"), WINDOW_MS).is_ok());
    }

    #[test]
    fn the_table_of_clients_is_capped() {
        let t = Throttle::default();
        for i in 0..(MAX_PEERS + 10) as u32 {
            t.failed(IpAddr::from(i.to_be_bytes()), i64::from(i / ALL_FAILURES));
        }
        assert!(t.lock().peers.len() <= MAX_PEERS);
    }
}
