//! Smoke tests proving the lab runs real servers: each talks to its server through the
//! server's own protocol and checks what only a real server would answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

mod broker;
mod mariadb;
mod postgres;
mod registry;
