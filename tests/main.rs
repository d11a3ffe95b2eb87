//! End-to-end tests of the `outflow` binary: the real daemon, driven through its CLI and
//! REST API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

/// The chaos test that pauses the shared broker takes this exclusively; other Kafka tests share it.
pub(crate) static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

mod bad_data;
mod bad_input;
mod chaos;
mod cli;
mod connectors;
mod debezium_migration;
mod debezium_oracle;
mod fuzz_corpus;
mod kafka_tls;
mod lifecycle;
mod mariadb;
mod nats_sink;
mod rest_tls;
mod secrets;
mod serve;
