//! Integration tests of the Kafka crate against the testkit's real registry (and, with
//! the sink, broker).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

mod avro_registry;
mod sink_live;
