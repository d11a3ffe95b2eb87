//! Integration tests of the Postgres connector against the testkit's real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

/// The tests of this binary share one server and run concurrently (each in its own
/// database, with slots named after it); a test that measures this process's memory
/// takes the lab exclusively so no other test allocates meanwhile.
pub(crate) struct Lab(tokio::sync::RwLock<()>);

impl Lab {
    /// For an ordinary test.
    pub(crate) async fn shared(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.0.read().await
    }

    /// For a test that must run alone.
    pub(crate) async fn exclusive(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.0.write().await
    }
}

pub(crate) static LAB: Lab = Lab(tokio::sync::RwLock::const_new(()));

mod concurrent_live;
mod fuzz_corpus;
mod kill_live;
mod large_transaction_live;
mod modes_live;
mod pgoutput_live;
mod recovery_live;
mod replication_live;
mod row_images_live;
mod slot_invalidation_live;
mod slot_ownership_live;
mod snapshot_live;
mod source_live;
mod tls_live;
mod types_live;
