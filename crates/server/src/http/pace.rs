//! Pacing of the polled admin endpoints (`/metrics` on either address, `/v1/status`): at most
//! one answer per `interval` among all of them. A request beyond waits its turn, asleep (no CPU
//! spent), for at most `max_wait`; past that it is answered `503` with `Retry-After`.
//!
//! Why: their figures come from a snapshot at most a second old, so answering them costs the
//! store nothing, but each answer still costs HTTP handling and rendering. A few clients polling
//! in a tight loop (a careless script, a misconfigured scraper) would otherwise take CPU from
//! delivery on a small machine; paced, they take a fixed, small share however many they are.
//! A scraper polls every 15 s or so and never waits.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Answers per second in all (`1 / interval`).
pub const ANSWERS_PER_SECOND: u32 = 20;

/// The longest a paced request waits before it is refused.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// The next free turn, shared by the paced endpoints.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    max_wait: Duration,
    next: Mutex<Option<Instant>>,
}

/// No turn within `max_wait`: too many requests are waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Default for Pace {
    fn default() -> Self {
        Self::new(Duration::from_secs(1) / ANSWERS_PER_SECOND, MAX_WAIT)
    }
}

impl Pace {
    pub fn new(interval: Duration, max_wait: Duration) -> Self {
        Self {
            interval,
            max_wait,
            next: Mutex::new(None),
        }
    }

    /// Waits for this request's turn, or says at once that it would wait too long.
    pub async fn turn(&self) -> Result<(), Busy> {
        let now = Instant::now();
        let at = {
            let mut next = self.next.lock().await;
            let at = next.map_or(now, |n| n.max(now));
            if at - now > self.max_wait {
                return Err(Busy);
            }
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn answers_are_spaced_and_the_queue_is_bounded() {
        let pace = std::sync::Arc::new(Pace::new(
            Duration::from_millis(100),
            Duration::from_millis(250),
        ));
        let start = Instant::now();
        // The first goes at once; the next three are spaced by the interval; the fifth
        // would wait 400 ms, over the 250 ms allowed.
        let mut waits = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let pace = pace.clone();
            tasks.push(tokio::spawn(async move {
                let r = pace.turn().await;
                (r, Instant::now() - start)
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            waits.push(t.await.expect("task"));
        }
        let ms = |d: Duration| d.as_millis();
        assert_eq!(
            waits
                .iter()
                .map(|(r, d)| (r.is_ok(), ms(*d)))
                .collect::<Vec<_>>(),
            [(true, 0), (true, 100), (true, 200), (false, 0), (false, 0)]
        );
        // Once the turns taken have passed, a request goes at once again.
        tokio::time::advance(Duration::from_millis(300)).await;
        let before = Instant::now();
        assert_eq!(pace.turn().await, Ok(()));
        assert_eq!(Instant::now(), before);
    }
}
