//! The store as the list resolver's registry: (destination, audience) → list id, durable, first
//! writer wins. The calls are the store's own (an engine that blocks runs them off the async
//! threads), so the resolver's tasks never wait on disk.

use std::future::Future;

use iterable::resolve::{ListRegistry, RegistryError};

use crate::store::{Store, StoreError};

/// Makes a [`Store`] an [`iterable::resolve::ListRegistry`].
#[derive(Debug, Clone)]
pub struct StoreRegistry(pub Store);

fn registry_error(e: StoreError) -> RegistryError {
    RegistryError(e.to_string())
}

impl ListRegistry for StoreRegistry {
    fn get(
        &self,
        destination: &str,
        audience: &str,
    ) -> impl Future<Output = Result<Option<i64>, RegistryError>> + Send {
        let (store, d, a) = (
            self.0.clone(),
            destination.to_string(),
            audience.to_string(),
        );
        async move { store.list_id(&d, &a).await.map_err(registry_error) }
    }

    fn put(
        &self,
        destination: &str,
        audience: &str,
        list_id: i64,
    ) -> impl Future<Output = Result<(), RegistryError>> + Send {
        let (store, d, a) = (
            self.0.clone(),
            destination.to_string(),
            audience.to_string(),
        );
        async move {
            store
                .put_list_id(&d, &a, list_id)
                .await
                .map(|_| ())
                .map_err(registry_error)
        }
    }
}
