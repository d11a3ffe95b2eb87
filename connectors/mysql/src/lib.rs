//! outflow-mysql: the MySQL 8 and MariaDB source connector.
//!
//! - [`config`]: Debezium's connector properties, validated;
//! - [`mariadb`]: MariaDB binlog events mysql_common does not decode (GTID, GTID_LIST,
//!   BINLOG_CHECKPOINT, ANNOTATE_ROWS);
//! - [`gtid`]: GTID positions (MariaDB) and sets (MySQL) for exact resume by GTID;
//! - [`types`]: column types and value decoding;
//! - [`source`]: preflight, consistent snapshot and binlog streaming, implementing
//!   [`outflow_core::Source`];
//! - [`position`]: binlog positions ([`position::BinlogPosition`]) and their family;
//! - [`source_block`]: Debezium's `source` block for MySQL and MariaDB.

pub mod config;
pub mod ddl;
pub mod fuzzing;
pub mod gtid;
pub mod mariadb;
pub mod plugin;
pub mod position;
pub mod source;
pub mod source_block;
pub mod types;

pub use config::{Flavor, MySqlConfig, SnapshotMode};
pub use plugin::MySqlPlugin;
pub use source::MySqlSource;
