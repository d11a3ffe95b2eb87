//! Integration tests of the MySQL / MariaDB source against the testkit's MariaDB.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

mod compressed_binlog_live;
mod fuzz_corpus;
mod mariadb_live;
mod tls_live;
