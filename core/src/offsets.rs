//! The [`OffsetStore`] trait: where a connector's resume point lives.
//!
//! Contract: stored progress never moves backward. `commit` with a position at or before
//! the stored one leaves the store unchanged and reports [`CommitOutcome::Stale`]; a
//! store is free to be called with stale positions (two checkpoints racing, a replayed
//! acknowledgement) and must stay correct. The pipeline commits a position only after the
//! sink reported it durable.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use crate::error::OffsetStoreError;
use crate::position::SourcePosition;

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The stored position moved forward to the committed one.
    Advanced,
    /// The committed position was at or before the stored one; nothing changed.
    Stale,
}

/// Durable storage of per-connector resume positions.
pub trait OffsetStore: Send + Sync + 'static {
    /// The stored position of `connector`, if any.
    fn load(
        &self,
        connector: &str,
    ) -> impl Future<Output = Result<Option<SourcePosition>, OffsetStoreError>> + Send;

    /// Stores `position` for `connector` if it is after the stored one.
    fn commit(
        &self,
        connector: &str,
        position: &SourcePosition,
    ) -> impl Future<Output = Result<CommitOutcome, OffsetStoreError>> + Send;

    /// Whether `connector` recorded creating `resource` outside the store (a replication
    /// slot) with [`OffsetStore::record_resource`]. A store that keeps no such records
    /// answers `false`: the resource is then not known to be the connector's, and a
    /// source must not destroy it.
    fn owns_resource(
        &self,
        _connector: &str,
        _resource: &str,
    ) -> impl Future<Output = Result<bool, OffsetStoreError>> + Send {
        std::future::ready(Ok(false))
    }

    /// Records durably, before the source creates it, that `connector` creates
    /// `resource`; returns whether the store keeps such records. Records outlive the
    /// connector's offsets (a reset leaves the slot the connector's own).
    fn record_resource(
        &self,
        _connector: &str,
        _resource: &str,
    ) -> impl Future<Output = Result<bool, OffsetStoreError>> + Send {
        std::future::ready(Ok(false))
    }
}

/// Decides a commit against the stored position; the one place the never-backward rule
/// is written down, for every store to use.
pub fn advance(stored: &mut Option<SourcePosition>, position: &SourcePosition) -> CommitOutcome {
    match stored {
        Some(current) if position <= current => CommitOutcome::Stale,
        _ => {
            *stored = Some(position.clone());
            CommitOutcome::Advanced
        }
    }
}

/// An offset store in memory, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemoryOffsetStore {
    positions: Mutex<HashMap<String, SourcePosition>>,
    resources: Mutex<std::collections::HashSet<(String, String)>>,
}

impl MemoryOffsetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets `connector`'s position, keeping its resource records (an operator's
    /// offset reset, as the daemon's `DELETE /connectors/{name}/offsets`).
    pub fn reset(&self, connector: &str) {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(connector);
    }
}

impl OffsetStore for MemoryOffsetStore {
    async fn load(&self, connector: &str) -> Result<Option<SourcePosition>, OffsetStoreError> {
        let positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(positions.get(connector).cloned())
    }

    async fn commit(
        &self,
        connector: &str,
        position: &SourcePosition,
    ) -> Result<CommitOutcome, OffsetStoreError> {
        let mut positions = self
            .positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut stored = positions.get(connector).cloned();
        let outcome = advance(&mut stored, position);
        if let (CommitOutcome::Advanced, Some(p)) = (outcome, stored) {
            positions.insert(connector.to_owned(), p);
        }
        Ok(outcome)
    }

    async fn owns_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> Result<bool, OffsetStoreError> {
        let resources = self
            .resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(resources.contains(&(connector.to_owned(), resource.to_owned())))
    }

    async fn record_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> Result<bool, OffsetStoreError> {
        self.resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((connector.to_owned(), resource.to_owned()));
        Ok(true)
    }
}

impl<T: OffsetStore> OffsetStore for std::sync::Arc<T> {
    fn load(
        &self,
        connector: &str,
    ) -> impl Future<Output = Result<Option<SourcePosition>, OffsetStoreError>> + Send {
        (**self).load(connector)
    }

    fn commit(
        &self,
        connector: &str,
        position: &SourcePosition,
    ) -> impl Future<Output = Result<CommitOutcome, OffsetStoreError>> + Send {
        (**self).commit(connector, position)
    }

    fn owns_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> impl Future<Output = Result<bool, OffsetStoreError>> + Send {
        (**self).owns_resource(connector, resource)
    }

    fn record_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> impl Future<Output = Result<bool, OffsetStoreError>> + Send {
        (**self).record_resource(connector, resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::SequenceFamily;
    use proptest::prelude::*;

    fn pos(n: u64) -> SourcePosition {
        SequenceFamily::at(n, false)
    }

    #[tokio::test]
    async fn memory_store_never_moves_backward() {
        let store = MemoryOffsetStore::new();
        assert_eq!(store.load("c").await.unwrap(), None);
        assert_eq!(
            store.commit("c", &pos(10)).await.unwrap(),
            CommitOutcome::Advanced
        );
        assert_eq!(
            store.commit("c", &pos(5)).await.unwrap(),
            CommitOutcome::Stale
        );
        assert_eq!(
            store.commit("c", &pos(10)).await.unwrap(),
            CommitOutcome::Stale
        );
        assert_eq!(store.load("c").await.unwrap(), Some(pos(10)));
        assert_eq!(store.load("other").await.unwrap(), None);
    }

    proptest! {
        #[test]
        fn stored_position_is_the_maximum_committed(commits in proptest::collection::vec(0u64..1000, 1..50)) {
            let mut stored = None;
            for &c in &commits {
                let before = stored.clone();
                advance(&mut stored, &pos(c));
                // Never backward at any step.
                if let Some(b) = before {
                    prop_assert!(stored.as_ref().is_some_and(|s| *s >= b));
                }
            }
            let max = commits.iter().copied().max().map(pos);
            prop_assert_eq!(stored, max);
        }
    }
}
