//! Integration tests of the Kafka crate against the testkit's real registry (and, with
//! the sink, broker).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

/// Tests that pause the shared broker take this exclusively; the others share it.
pub(crate) static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

mod avro_registry;
mod conformance;
mod sink_live;
