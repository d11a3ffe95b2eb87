//! Debezium's `source` block: `io.debezium.connector.<connector>.Source`.
//!
//! The common fields (`version`, `connector`, `name`, `ts_ms`, `snapshot`; Debezium 3.1+,
//! source schema version 1, the seven-value `snapshot` enum) are written here; the rest
//! are the source crate's [`SourceBlock`]'s, turned from its [`SourceValue`]s into Connect
//! data with no copy of shared names.

use std::sync::Arc;

use crate::connect::{ConnectSchema, Datum, Field, SchemaKind};
use outflow_core::event::{ChangeEvent, EventKind, SnapshotMark};
use outflow_core::position::SourcePosition;
use outflow_core::source_block::{
    SourceBlock, SourceBlockInput, SourceField, SourceFieldKind, SourceValue,
};

use super::config::EnvelopeConfig;

/// `source.version`: which software wrote the record.
pub(crate) const SOURCE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-outflow");

const SNAPSHOT_ALLOWED: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

#[derive(Debug)]
pub(crate) struct SourceInfo {
    block: &'static dyn SourceBlock,
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

fn field(f: &SourceField) -> Field {
    let kind = match f.kind {
        SourceFieldKind::Int32 => SchemaKind::Int32,
        SourceFieldKind::Int64 => SchemaKind::Int64,
        SourceFieldKind::String => SchemaKind::String,
    };
    let schema = ConnectSchema::new(kind);
    Field::new(
        f.name,
        if f.optional {
            schema.optional()
        } else {
            schema
        },
    )
}

fn datum(value: SourceValue) -> Datum {
    match value {
        SourceValue::Null => Datum::Null,
        SourceValue::Int32(v) => Datum::Int32(v),
        SourceValue::Int64(v) => Datum::Int64(v),
        SourceValue::Text(v) => Datum::Text(v),
        SourceValue::String(v) => Datum::String(v),
    }
}

impl SourceInfo {
    pub(crate) fn new(config: &EnvelopeConfig) -> Self {
        let block = config.source;
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
        ];
        fields.extend(block.fields().iter().map(field));
        let name = format!("io.debezium.connector.{}.Source", block.connector());
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
            block,
            schema: Arc::new(ConnectSchema::record(name, fields).versioned(1)),
            version: SOURCE_VERSION.into(),
            connector: block.connector().into(),
            name: config.topic_prefix.as_str().into(),
            database: config.database.as_str().into(),
            snapshot_values: marks.map(Arc::from),
        }
    }

    pub(crate) fn schema(&self) -> &Arc<ConnectSchema> {
        &self.schema
    }

    /// The block of `event`; `scratch` is a buffer the caller keeps between calls.
    pub(crate) fn datum(
        &self,
        event: &ChangeEvent,
        table: &TableNames,
        previous_commit: Option<&SourcePosition>,
        scratch: &mut Vec<SourceValue>,
    ) -> Datum {
        let ts_us = event.source_ts_us.unwrap_or(0);
        let snapshot = match &event.kind {
            EventKind::Read { mark, .. } => snapshot_index(*mark),
            _ => 0,
        };
        let mut fields = Vec::with_capacity(self.schema.fields().len());
        fields.extend([
            Datum::Text(Arc::clone(&self.version)),
            Datum::Text(Arc::clone(&self.connector)),
            Datum::Text(Arc::clone(&self.name)),
            Datum::Int64(ts_us.div_euclid(1000)),
            Datum::Text(Arc::clone(&self.snapshot_values[snapshot])),
        ]);
        scratch.clear();
        self.block.values(
            SourceBlockInput {
                event,
                database: &self.database,
                namespace: &table.namespace,
                table: &table.table,
                previous_commit,
            },
            scratch,
        );
        fields.extend(scratch.drain(..).map(datum));
        Datum::Struct(fields)
    }
}
