//! List resolution, exactly one list per audience: the registry, then a verified external id,
//! then a Standard list named after the audience key, then creation; single-flight per audience.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use retry::{Backoff, random_fraction};

use crate::client::{AttemptObserver, Client, IterableError};
use crate::lists::{choose_list, find_by_id};

/// A registry failure (the store behind it), as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("list registry: {0}")]
pub struct RegistryError(pub String);

/// Where resolved lists are remembered: (destination, audience key) → list id. The store
/// implements it durably; [`MemoryRegistry`] keeps it in memory.
pub trait ListRegistry: Send + Sync {
    fn get(
        &self,
        destination: &str,
        audience: &str,
    ) -> impl Future<Output = Result<Option<i64>, RegistryError>> + Send;
    fn put(
        &self,
        destination: &str,
        audience: &str,
        list_id: i64,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send;
}

/// A registry in memory (tests, `plan`, and processes without a store).
#[derive(Debug, Default)]
pub struct MemoryRegistry(Mutex<HashMap<(String, String), i64>>);

impl ListRegistry for MemoryRegistry {
    async fn get(&self, destination: &str, audience: &str) -> Result<Option<i64>, RegistryError> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.get(&(destination.to_string(), audience.to_string()))
            .copied())
    }

    async fn put(
        &self,
        destination: &str,
        audience: &str,
        list_id: i64,
    ) -> Result<(), RegistryError> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((destination.to_string(), audience.to_string()))
            .or_insert(list_id);
        Ok(())
    }
}

/// Why no list could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Iterable(#[from] IterableError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// How long after creation a list may still answer `invalidListId`.
pub const FRESH_FOR: Duration = Duration::from_secs(60);

/// Resolves audiences to lists for one destination.
pub struct ListResolver<R> {
    client: Arc<Client>,
    registry: R,
    destination: String,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    created: Mutex<HashMap<i64, Instant>>,
    /// Creation attempts before giving up.
    pub create_attempts: u32,
}

impl<R: ListRegistry> ListResolver<R> {
    pub fn new(client: Arc<Client>, registry: R, destination: impl Into<String>) -> Self {
        Self {
            client,
            registry,
            destination: destination.into(),
            flights: Mutex::new(HashMap::new()),
            created: Mutex::new(HashMap::new()),
            create_attempts: 8,
        }
    }

    pub fn registry(&self) -> &R {
        &self.registry
    }

    fn flight(&self, audience: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut f = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        f.entry(audience.to_string()).or_default().clone()
    }

    /// Whether this resolver created `list_id` so recently that Iterable may not know it yet
    /// everywhere (an `invalidListId` then means "retry soon", not "gone").
    pub fn is_fresh(&self, list_id: i64) -> bool {
        let c = self.created.lock().unwrap_or_else(|p| p.into_inner());
        c.get(&list_id).is_some_and(|t| t.elapsed() < FRESH_FOR)
    }

    /// Marks `list_id` as created now (by a caller other than [`ListResolver::resolve`]):
    /// see [`ListResolver::is_fresh`].
    pub fn mark_created(&self, list_id: i64) {
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(list_id, Instant::now());
    }

    /// Stores the audience's list, `found` in Iterable or created; logs it (once per
    /// audience: later lookups find it in the registry).
    async fn remember(&self, audience: &str, id: i64, found: bool) -> Result<i64, ResolveError> {
        self.registry.put(&self.destination, audience, id).await?;
        // A concurrent writer may have stored another id first: the registry's wins.
        let id = self
            .registry
            .get(&self.destination, audience)
            .await?
            .unwrap_or(id);
        tracing::info!(
            destination = %self.destination,
            audience,
            list_id = id,
            "{}",
            if found {
                "list found in Iterable"
            } else {
                "list created in Iterable"
            }
        );
        Ok(id)
    }

    /// The list of `audience`, found or created. Concurrent calls for one audience wait for
    /// the first; a creation whose answer was lost is looked up before it is tried again.
    pub async fn resolve(
        &self,
        audience: &str,
        external_id: Option<i64>,
    ) -> Result<i64, ResolveError> {
        self.resolve_observed(audience, external_id, None).await
    }

    /// [`ListResolver::resolve`], telling `observer` about each retryable failure of its calls
    /// to Iterable.
    pub async fn resolve_observed(
        &self,
        audience: &str,
        external_id: Option<i64>,
        observer: Option<&dyn AttemptObserver>,
    ) -> Result<i64, ResolveError> {
        if let Some(id) = self.registry.get(&self.destination, audience).await? {
            return Ok(id);
        }
        let flight = self.flight(audience);
        let _only_one = flight.lock().await;
        if let Some(id) = self.registry.get(&self.destination, audience).await? {
            return Ok(id);
        }
        let lists = self.client.get_lists_observed(observer).await?;
        if let Some(id) = external_id
            && find_by_id(&lists, id).is_some()
        {
            return self.remember(audience, id, true).await;
        }
        if let Some(l) = choose_list(&lists, audience) {
            return self.remember(audience, l.id, true).await;
        }
        let mut attempt = 1;
        loop {
            match self.client.create_list_observed(audience, observer).await {
                Ok(id) => {
                    self.created
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, Instant::now());
                    return self.remember(audience, id, false).await;
                }
                Err(e) => {
                    // Creation is tried again here, not by the client: after a lost answer the
                    // list may exist, so it is looked for first.
                    let backoff = Backoff {
                        max_attempts: self.create_attempts,
                        ..Backoff::default()
                    };
                    let Some(wait) = retry::again(
                        &backoff,
                        e.class,
                        e.retry_after,
                        attempt,
                        true,
                        random_fraction(),
                    ) else {
                        return Err(e.into());
                    };
                    tokio::time::sleep(wait).await;
                    if e.is_ambiguous() {
                        // The list may exist although the answer was lost: look first.
                        let lists = self.client.get_lists_observed(observer).await?;
                        if let Some(l) = choose_list(&lists, audience) {
                            return self.remember(audience, l.id, true).await;
                        }
                    }
                    attempt += 1;
                }
            }
        }
    }
}
