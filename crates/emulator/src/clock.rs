//! Time as the emulator sees it: wall-clock milliseconds and sleeps behind one trait.
//! Tests inject [`ManualClock`] so latency, rate limits and list visibility never need real sleeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A boxed sleep future, as returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The emulator's source of time.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the Unix epoch. Never goes backwards.
    fn now_nanos(&self) -> u64;
    /// Waits for `d` of this clock's time.
    fn sleep(&self, d: Duration) -> Sleep;
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64 {
        self.now_nanos() / 1_000_000
    }
}

/// The real clock: the system time at start, advanced by a monotonic timer.
#[derive(Debug)]
pub struct SystemClock {
    epoch_nanos: u64,
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        let epoch_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            epoch_nanos,
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        self.epoch_nanos + self.start.elapsed().as_nanos() as u64
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that only moves when told to. A sleep advances it at once and returns.
#[derive(Debug)]
pub struct ManualClock {
    nanos: Mutex<u64>,
}

impl ManualClock {
    /// A clock that starts at `start_millis` since the Unix epoch.
    pub fn new(start_millis: u64) -> Self {
        Self {
            nanos: Mutex::new(start_millis * 1_000_000),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut n = self.nanos.lock().unwrap_or_else(|e| e.into_inner());
        *n += d.as_nanos() as u64;
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        *self.nanos.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep(&self, d: Duration) -> Sleep {
        self.advance(d);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_sleep_advances_without_waiting() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_millis(), 1_000);
        c.sleep(Duration::from_secs(60)).await;
        assert_eq!(c.now_millis(), 61_000);
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now_millis(), 61_005);
    }

    #[test]
    fn system_clock_is_monotonic_and_near_wall_time() {
        let c = SystemClock::new();
        let a = c.now_nanos();
        let b = c.now_nanos();
        assert!(b >= a);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let diff = (wall.as_millis() as i128 - c.now_millis() as i128).abs();
        assert!(diff < 5_000, "clock is {diff} ms off the wall clock");
    }
}
