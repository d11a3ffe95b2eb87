//! Integration tests of the Postgres connector against the testkit's real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

mod pgoutput_live;
mod replication_live;
mod source_live;
mod types_live;
