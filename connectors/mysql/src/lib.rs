//! outflow-mysql: the MySQL 8 and MariaDB source connector.
//!
//! It will own the binlog client (mysql_async with the `binlog` feature, plus the MariaDB
//! event types that mysql_common does not decode: GTID, GTID_LIST, BINLOG_CHECKPOINT,
//! ANNOTATE_ROWS), preflight checks (`log_bin`, `binlog_format=ROW`, row image and
//! metadata, privileges, server id), the consistent snapshot, the schema history (DDL
//! parsing and storage so old binlog events decode with the schema of their time), MySQL
//! type mapping into [`outflow_core::Value`], and GTID / file-position resume. It
//! implements [`outflow_core::Source`] and emits [`outflow_core::BinlogPosition`]s.
