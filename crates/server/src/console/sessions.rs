//! The console's sessions, kept in memory on the server: a random id (256 bits from
//! `ring::rand`) in the browser's cookie, and here only its SHA-256 with the session's CSRF
//! token and its pending flash message. A session ends after [`IDLE_MS`] without a request,
//! [`MAX_AGE_MS`] after sign-in, or at sign-out; at most [`MAX_SESSIONS`] exist at once (signing
//! in past that ends the least recently used one), so no client can make the table grow.

use std::collections::HashMap;
use std::sync::Mutex;

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// A session ends after this long without a request (30 minutes).
pub(crate) const IDLE_MS: i64 = 30 * 60 * 1000;
/// A session ends this long after sign-in whatever its use (12 hours).
pub(crate) const MAX_AGE_MS: i64 = 12 * 3600 * 1000;
/// At most so many sessions at once.
pub(crate) const MAX_SESSIONS: usize = 256;

/// A message shown once, on the next page the session reads (after a POST-redirect-GET).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    pub ok: bool,
    pub text: String,
}

/// What a request learns of its session.
#[derive(Debug, Clone)]
pub(crate) struct SessionView {
    /// The first 8 hex digits of the id's hash: names the session in logs, reveals nothing.
    pub label: String,
    pub csrf: String,
    pub flash: Option<Flash>,
}

struct Session {
    csrf: String,
    label: String,
    created_ms: i64,
    last_ms: i64,
    flash: Option<Flash>,
}

/// The table of sessions.
pub(crate) struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
    rng: SystemRandom,
}

/// The system's random source failed: no session can be made.
#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed")]
pub(crate) struct NoRandom;

impl Default for Sessions {
    fn default() -> Self {
        Self {
            table: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
        }
    }
}

impl Sessions {
    /// A new session; its id (for the cookie) and what a request learns of it.
    pub(crate) fn create(&self, now_ms: i64) -> Result<(String, SessionView), NoRandom> {
        let id = self.random_hex()?;
        let csrf = self.random_hex()?;
        let key = key_of(&id);
        let label = hex(&key[..4]);
        let mut table = self.lock();
        table.retain(|_, s| alive(s, now_ms));
        if table.len() >= MAX_SESSIONS {
            let oldest = table.iter().min_by_key(|(_, s)| s.last_ms).map(|(k, _)| *k);
            if let Some(k) = oldest {
                table.remove(&k);
            }
        }
        table.insert(
            key,
            Session {
                csrf: csrf.clone(),
                label: label.clone(),
                created_ms: now_ms,
                last_ms: now_ms,
                flash: None,
            },
        );
        let view = SessionView {
            label,
            csrf,
            flash: None,
        };
        Ok((id, view))
    }

    /// The live session of a cookie value, marked as used now; its flash message is taken
    /// when `take_flash` (a page that shows it).
    pub(crate) fn find(&self, id: &str, now_ms: i64, take_flash: bool) -> Option<SessionView> {
        if !well_formed(id) {
            return None;
        }
        let key = key_of(id);
        let mut table = self.lock();
        let session = table.get_mut(&key)?;
        if !alive(session, now_ms) {
            table.remove(&key);
            return None;
        }
        session.last_ms = now_ms;
        let flash = if take_flash {
            session.flash.take()
        } else {
            None
        };
        Some(SessionView {
            label: session.label.clone(),
            csrf: session.csrf.clone(),
            flash,
        })
    }

    /// Leaves a message for the session's next page.
    pub(crate) fn flash(&self, id: &str, flash: Flash) {
        if !well_formed(id) {
            return;
        }
        if let Some(s) = self.lock().get_mut(&key_of(id)) {
            s.flash = Some(flash);
        }
    }

    /// Ends a session (sign-out).
    pub(crate) fn remove(&self, id: &str) {
        if well_formed(id) {
            self.lock().remove(&key_of(id));
        }
    }

    /// How many sessions the table holds (live or not yet swept).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves the table consistent (each change is one call).
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn random_hex(&self) -> Result<String, NoRandom> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).map_err(|_| NoRandom)?;
        Ok(hex(&bytes))
    }
}

fn alive(s: &Session, now_ms: i64) -> bool {
    now_ms.saturating_sub(s.last_ms) < IDLE_MS && now_ms.saturating_sub(s.created_ms) < MAX_AGE_MS
}

/// A session id is 64 lowercase hex digits; anything else is not looked up.
fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The table's key: the id's SHA-256, so that the table's timing and contents tell nothing of
/// the ids themselves.
fn key_of(id: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, id.as_bytes()).as_ref());
    key
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Two strings compared in time that depends only on their lengths (CSRF tokens).
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_only() {
        let s = Sessions::default();
        let (id, view) = s.create(0).expect("random");
        assert_eq!(id.len(), 64);
        let found = s.find(&id, 1, true).expect("found");
        assert_eq!(found.csrf, view.csrf);
        assert!(s.find(&id.replace(&id[..1], "x"), 1, true).is_none());
        assert!(s.find("", 1, true).is_none());
        let (other, _) = s.create(0).expect("random");
        assert_ne!(id, other);
    }

    #[test]
    fn sessions_expire_when_idle_and_when_old() {
        let s = Sessions::default();
        let (id, _) = s.create(0).expect("random");
        assert!(s.find(&id, IDLE_MS - 1, false).is_some());
        assert!(s.find(&id, 2 * IDLE_MS - 2, false).is_some());
        assert!(s.find(&id, 3 * IDLE_MS, false).is_none(), "idle");
        let (id, _) = s.create(0).expect("random");
        let mut t = 0;
        while t + IDLE_MS / 2 < MAX_AGE_MS {
            t += IDLE_MS / 2;
            assert!(s.find(&id, t, false).is_some(), "used at {t}");
        }
        assert!(s.find(&id, MAX_AGE_MS, false).is_none(), "too old");
    }

    #[test]
    fn the_table_is_capped_and_the_least_recently_used_goes() {
        let s = Sessions::default();
        let (first, _) = s.create(0).expect("random");
        let (second, _) = s.create(1).expect("random");
        assert!(s.find(&first, 2, false).is_some());
        for i in 0..MAX_SESSIONS {
            s.create(3 + i as i64).expect("random");
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            s.find(&second, 1000, false).is_none(),
            "least recently used"
        );
    }

    #[test]
    fn flash_is_shown_once_and_sign_out_ends_the_session() {
        let s = Sessions::default();
        let (id, _) = s.create(0).expect("random");
        let flash = Flash {
            ok: true,
            text: "paused".into(),
        };
        s.flash(&id, flash.clone());
        assert_eq!(s.find(&id, 1, false).expect("found").flash, None);
        assert_eq!(s.find(&id, 1, true).expect("found").flash, Some(flash));
        assert_eq!(s.find(&id, 1, true).expect("found").flash, None);
        s.remove(&id);
        assert!(s.find(&id, 1, true).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
