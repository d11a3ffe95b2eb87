//! Debezium's `source` block, as each source crate defines it.
//!
//! Every Debezium record carries a `source` struct (`io.debezium.connector.<connector>.Source`)
//! whose first fields are common (`version`, `connector`, `name`, `ts_ms`, `snapshot`,
//! written by the record stage) and whose others belong to the database: Postgres writes
//! `db`, `sequence`, `schema`, `table`, `txId`, `lsn`, …; MySQL `db`, `table`,
//! `server_id`, `file`, `pos`, … A source crate describes its fields with a
//! [`SourceBlock`] (one `static` per connector class) and writes their values from an
//! event; the record stage turns them into its own data model. `core` thus stays free of
//! any database's knowledge, and the record stage makes one call per event to the block,
//! with a reused buffer, no allocation of its own.

use std::fmt;
use std::sync::Arc;

use crate::event::ChangeEvent;
use crate::position::SourcePosition;

/// The type of one source-block field (the Connect schema types Debezium uses there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFieldKind {
    /// INT32.
    Int32,
    /// INT64.
    Int64,
    /// STRING.
    String,
}

/// One field of a source block after the common ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceField {
    /// Field name, as Debezium spells it.
    pub name: &'static str,
    /// Its type.
    pub kind: SourceFieldKind,
    /// True when it may be null.
    pub optional: bool,
}

impl SourceField {
    /// A required field.
    pub const fn required(name: &'static str, kind: SourceFieldKind) -> Self {
        Self {
            name,
            kind,
            optional: false,
        }
    }

    /// An optional field.
    pub const fn optional(name: &'static str, kind: SourceFieldKind) -> Self {
        Self {
            name,
            kind,
            optional: true,
        }
    }
}

/// One value of a source-block field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceValue {
    /// Null (only for optional fields).
    Null,
    /// An INT32 value.
    Int32(i32),
    /// An INT64 value.
    Int64(i64),
    /// A shared STRING value (names repeated on every record).
    Text(Arc<str>),
    /// An owned STRING value.
    String(String),
}

/// What a block is given to write one event's values.
#[derive(Debug, Clone, Copy)]
pub struct SourceBlockInput<'a> {
    /// The event.
    pub event: &'a ChangeEvent,
    /// The connector's `database.dbname` (empty when it has none).
    pub database: &'a Arc<str>,
    /// The namespace of the event's table (Postgres schema, MySQL database).
    pub namespace: &'a Arc<str>,
    /// The event's table name.
    pub table: &'a Arc<str>,
    /// The position of the last transaction commit before this event, if any.
    pub previous_commit: Option<&'a SourcePosition>,
}

/// Debezium's `source` block of one connector class, and the record defaults that go
/// with it. A `static` in the source crate, named by its
/// [`ConnectorClass`](crate::ConnectorClass).
pub trait SourceBlock: fmt::Debug + Send + Sync + 'static {
    /// The `source.connector` value (`postgresql`, `mysql`, `mariadb`); also the middle
    /// of the record names (`io.debezium.connector.<connector>.Source`).
    fn connector(&self) -> &'static str;

    /// The fields after the common `version`, `connector`, `name`, `ts_ms`, `snapshot`,
    /// in order.
    fn fields(&self) -> &'static [SourceField];

    /// Appends one event's values of [`Self::fields`], in order, one per field.
    fn values(&self, input: SourceBlockInput<'_>, out: &mut Vec<SourceValue>);

    /// Debezium's default `time.precision.mode` for this connector.
    fn default_time_precision(&self) -> &'static str {
        "adaptive"
    }

    /// True when the connector writes schema changes to `<topic.prefix>` by default
    /// (`include.schema.changes`; Debezium's MySQL connectors do, Postgres has none).
    fn schema_change_topic(&self) -> bool {
        false
    }

    /// The envelope's `transaction.id` for a row event of the transaction the source's
    /// BEGIN named `begin_id`, when the connector writes another per event (Debezium's
    /// Postgres connector writes `<xid>:<the event's own LSN>`); `None`: `begin_id`.
    fn transaction_id(&self, event: &ChangeEvent, begin_id: &str) -> Option<String> {
        let _ = (event, begin_id);
        None
    }
}

/// The event's source timestamp in µs and ns (`ts_us`, `ts_ns`), 0 when unknown: the
/// two fields every block has after `sequence`.
pub fn timestamps(event: &ChangeEvent) -> [SourceValue; 2] {
    let ts_us = event.source_ts_us.unwrap_or(0);
    [
        SourceValue::Int64(ts_us),
        SourceValue::Int64(ts_us.saturating_mul(1000)),
    ]
}

/// Two blocks are the same when they write the same connector's records.
impl PartialEq for dyn SourceBlock {
    fn eq(&self, other: &Self) -> bool {
        self.connector() == other.connector()
    }
}

impl Eq for dyn SourceBlock {}
