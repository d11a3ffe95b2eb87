//! End-to-end tests of the `outflow` binary: the real daemon, driven through its CLI and
//! REST API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

mod connectors;
mod serve;
