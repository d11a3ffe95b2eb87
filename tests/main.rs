//! End-to-end tests of the `outflow` binary: the real daemon, driven through its CLI and
//! REST API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

/// The crash test pauses the shared broker; it takes this exclusively, others share it.
pub(crate) static BROKER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

mod chaos;
mod cli;
mod connectors;
mod crash;
mod crash_mariadb;
mod lifecycle;
mod mariadb;
mod serve;
