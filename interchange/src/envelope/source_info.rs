//! Debezium's `source` block: `io.debezium.connector.{postgresql,mysql,mariadb}.Source`.
//!
//! Field order and optionality follow Debezium 3.1+ (source schema version 1, the
//! seven-value `snapshot` enum). Postgres' `sequence` is `["<previous commit LSN>","<LSN>"]`
//! as decimal strings, with `null` where unknown, as Debezium writes it.

use std::sync::Arc;

use crate::connect::{ConnectSchema, Datum, Field, SchemaKind};
use outflow_core::event::{ChangeEvent, EventKind, SnapshotMark};
use outflow_core::position::{Lsn, SourcePosition};

use super::config::{ConnectorFlavor, EnvelopeConfig};

/// `source.version`: which software wrote the record.
pub(crate) const SOURCE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-outflow");

const SNAPSHOT_ALLOWED: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

#[derive(Debug)]
pub(crate) struct SourceInfo {
    flavor: ConnectorFlavor,
    schema: Arc<ConnectSchema>,
    version: Arc<str>,
    connector: Arc<str>,
    name: Arc<str>,
    database: Arc<str>,
    /// `snapshot` values: not a snapshot, then each [`SnapshotMark`] in declaration order.
    snapshot_values: [Arc<str>; 7],
}

/// The table names a source block repeats, shared per table version.
#[derive(Debug)]
pub(crate) struct TableNames {
    pub(crate) namespace: Arc<str>,
    pub(crate) table: Arc<str>,
}

fn snapshot_index(mark: SnapshotMark) -> usize {
    match mark {
        SnapshotMark::First => 1,
        SnapshotMark::FirstInDataCollection => 2,
        SnapshotMark::True => 3,
        SnapshotMark::LastInDataCollection => 4,
        SnapshotMark::Last => 5,
        SnapshotMark::Incremental => 6,
    }
}

fn req(kind: SchemaKind) -> ConnectSchema {
    ConnectSchema::new(kind)
}

fn opt(kind: SchemaKind) -> ConnectSchema {
    ConnectSchema::new(kind).optional()
}

impl SourceInfo {
    pub(crate) fn new(flavor: ConnectorFlavor, config: &EnvelopeConfig) -> Self {
        let mut fields = vec![
            Field::new("version", req(SchemaKind::String)),
            Field::new("connector", req(SchemaKind::String)),
            Field::new("name", req(SchemaKind::String)),
            Field::new("ts_ms", req(SchemaKind::Int64)),
            Field::new(
                "snapshot",
                ConnectSchema::new(SchemaKind::String)
                    .named("io.debezium.data.Enum")
                    .versioned(1)
                    .parameter("allowed", SNAPSHOT_ALLOWED)
                    .with_default(Datum::String("false".into()))
                    .optional(),
            ),
            Field::new("db", req(SchemaKind::String)),
            Field::new("sequence", opt(SchemaKind::String)),
            Field::new("ts_us", opt(SchemaKind::Int64)),
            Field::new("ts_ns", opt(SchemaKind::Int64)),
        ];
        match flavor {
            ConnectorFlavor::Postgres => fields.extend([
                Field::new("schema", req(SchemaKind::String)),
                Field::new("table", req(SchemaKind::String)),
                Field::new("txId", opt(SchemaKind::Int64)),
                Field::new("lsn", opt(SchemaKind::Int64)),
                Field::new("xmin", opt(SchemaKind::Int64)),
            ]),
            ConnectorFlavor::MySql | ConnectorFlavor::MariaDb => fields.extend([
                Field::new("table", opt(SchemaKind::String)),
                Field::new("server_id", req(SchemaKind::Int64)),
                Field::new("gtid", opt(SchemaKind::String)),
                Field::new("file", req(SchemaKind::String)),
                Field::new("pos", req(SchemaKind::Int64)),
                Field::new("row", req(SchemaKind::Int32)),
                Field::new("thread", opt(SchemaKind::Int64)),
                Field::new("query", opt(SchemaKind::String)),
            ]),
        }
        let name = format!("io.debezium.connector.{}.Source", flavor.connector_name());
        let marks = [
            "false",
            SnapshotMark::First.as_debezium(),
            SnapshotMark::FirstInDataCollection.as_debezium(),
            SnapshotMark::True.as_debezium(),
            SnapshotMark::LastInDataCollection.as_debezium(),
            SnapshotMark::Last.as_debezium(),
            SnapshotMark::Incremental.as_debezium(),
        ];
        Self {
            flavor,
            schema: Arc::new(ConnectSchema::record(name, fields).versioned(1)),
            version: SOURCE_VERSION.into(),
            connector: flavor.connector_name().into(),
            name: config.topic_prefix.as_str().into(),
            database: config.database.as_str().into(),
            snapshot_values: marks.map(Arc::from),
        }
    }

    pub(crate) fn schema(&self) -> &Arc<ConnectSchema> {
        &self.schema
    }

    pub(crate) fn datum(
        &self,
        event: &ChangeEvent,
        table: &TableNames,
        last_commit_lsn: Option<Lsn>,
    ) -> Datum {
        let ts_us = event.source_ts_us.unwrap_or(0);
        let snapshot = match &event.kind {
            EventKind::Read { mark, .. } => snapshot_index(*mark),
            _ => 0,
        };
        let db = match self.flavor {
            ConnectorFlavor::Postgres => Arc::clone(&self.database),
            _ => Arc::clone(&table.namespace),
        };
        let mut fields = Vec::with_capacity(self.schema.fields().len());
        fields.extend([
            Datum::Text(Arc::clone(&self.version)),
            Datum::Text(Arc::clone(&self.connector)),
            Datum::Text(Arc::clone(&self.name)),
            Datum::Int64(ts_us.div_euclid(1000)),
            Datum::Text(Arc::clone(&self.snapshot_values[snapshot])),
            Datum::Text(db),
        ]);
        match self.flavor {
            ConnectorFlavor::Postgres => {
                let p = match &event.position {
                    SourcePosition::Postgres(p) => Some(p),
                    SourcePosition::Binlog(_) => None,
                };
                let lsn = p.map_or(0, |p| p.lsn.0);
                let previous = if p.is_some_and(|p| p.snapshot) {
                    None
                } else {
                    last_commit_lsn
                };
                let mut sequence = String::with_capacity(48);
                sequence.push('[');
                match previous {
                    Some(prev) => {
                        sequence.push('"');
                        push_decimal(&mut sequence, prev.0);
                        sequence.push('"');
                    }
                    None => sequence.push_str("null"),
                }
                sequence.push_str(",\"");
                push_decimal(&mut sequence, lsn);
                sequence.push_str("\"]");
                fields.extend([
                    Datum::String(sequence),
                    Datum::Int64(ts_us),
                    Datum::Int64(ts_us.saturating_mul(1000)),
                    Datum::Text(Arc::clone(&table.namespace)),
                    Datum::Text(Arc::clone(&table.table)),
                    p.and_then(|p| p.tx_id)
                        .map_or(Datum::Null, |x| Datum::Int64(i64::from(x))),
                    i64::try_from(lsn).map_or(Datum::Null, Datum::Int64),
                    Datum::Null,
                ]);
            }
            ConnectorFlavor::MySql | ConnectorFlavor::MariaDb => {
                let p = match &event.position {
                    SourcePosition::Binlog(p) => Some(p),
                    SourcePosition::Postgres(_) => None,
                };
                let detail = event.binlog.as_deref();
                fields.extend([
                    Datum::Null,
                    Datum::Int64(ts_us),
                    Datum::Int64(ts_us.saturating_mul(1000)),
                    Datum::Text(Arc::clone(&table.table)),
                    Datum::Int64(detail.map_or(0, |d| i64::from(d.server_id))),
                    p.and_then(|p| p.gtid.clone())
                        .map_or(Datum::Null, Datum::String),
                    Datum::String(p.map(|p| p.file.clone()).unwrap_or_default()),
                    Datum::Int64(p.map_or(0, |p| i64::try_from(p.pos).unwrap_or(i64::MAX))),
                    Datum::Int32(p.map_or(0, |p| i32::try_from(p.row).unwrap_or(i32::MAX))),
                    detail.and_then(|d| d.thread).map_or(Datum::Null, |t| {
                        Datum::Int64(i64::try_from(t).unwrap_or(i64::MAX))
                    }),
                    detail
                        .and_then(|d| d.query.clone())
                        .map_or(Datum::Null, Datum::String),
                ]);
            }
        }
        Datum::Struct(fields)
    }
}

/// Appends the decimal digits of `v` without the formatting machinery.
fn push_decimal(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}
