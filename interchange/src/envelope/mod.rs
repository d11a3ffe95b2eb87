//! The Debezium envelope: which records a change event becomes.
//!
//! [`EnvelopeFormatter`] turns each [`ChangeEvent`] into zero or more [`Record`]s — topic,
//! key and value as Kafka Connect schemas and data ([`crate::connect`]) — exactly as
//! Debezium's connectors build them:
//!
//! - data-change records on `<topic.prefix>.<schema|database>.<table>` with key
//!   `<topic>.Key` (the primary-key columns; no key for keyless tables) and value
//!   `<topic>.Envelope` = `before`, `after` (`<topic>.Value`), `source`, `transaction`,
//!   `op`, `ts_ms`, `ts_us`, `ts_ns`;
//! - a tombstone (same key, null value) after each delete when `tombstones.on.delete`;
//! - an update that changes the row's key as a delete of the old key, its tombstone and
//!   a create of the new key, with `__debezium.newkey` / `__debezium.oldkey` headers;
//! - `t` records for truncates (skipped by default, as Debezium's `skipped.operations=t`);
//! - heartbeats on `__debezium-heartbeat.<prefix>`;
//! - transaction BEGIN/END records on `<prefix>.transaction` and the `transaction` block in
//!   each envelope when `provide.transaction.metadata`.
//!
//! Encoding those records to bytes is the encoders' job ([`crate::encoding`]); nothing
//! here knows Avro or JSON. Schemas are built once per table version and shared through
//! `Arc`s, so formatting an event allocates only its data.

pub mod columns;
pub mod config;
mod schema_change;
mod source_info;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use crate::connect::{ConnectSchema, Datum, Field, SchemaKind};
use outflow_core::event::{ChangeEvent, EventKind, Row};
use outflow_core::position::SourcePosition;
use outflow_core::schema::{SchemaVersion, TableId, TableSchema};
use outflow_core::source_block::SourceValue;
use outflow_core::value::Value;

pub use config::{
    BinaryHandlingMode, DecimalHandlingMode, EnvelopeConfig, IntervalHandlingMode, Operation,
    PropertyError, TimePrecisionMode,
};
use types::{TypeMismatch, TypeModes, column_datum, column_schema};

/// A schema together with data of that schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// The Connect schema.
    pub schema: Arc<ConnectSchema>,
    /// The data.
    pub datum: Datum,
}

/// What a record is, for sinks that route or count by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A data-change event (`c`, `u`, `d`, `r`, `t`).
    Change,
    /// The tombstone after a delete.
    Tombstone,
    /// A heartbeat.
    Heartbeat,
    /// A transaction BEGIN or END record.
    TransactionMetadata,
    /// A MySQL/MariaDB schema-change record.
    SchemaChange,
}

/// One record for a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Destination topic.
    pub topic: Arc<str>,
    /// Key; `None` is a null key.
    pub key: Option<Payload>,
    /// Value; `None` is a tombstone.
    pub value: Option<Payload>,
    /// Position of the event the record comes from.
    pub position: SourcePosition,
    /// What kind of record.
    pub kind: RecordKind,
    /// Headers (name, text value), added by transforms such as `add.headers`.
    pub headers: Vec<(String, String)>,
}

/// A change event that cannot be put in Debezium's shape (a source bug; definite).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A column value does not fit the column's type.
    #[error("table {table}, column {column}: {source}")]
    Column {
        /// The table.
        table: TableId,
        /// The column.
        column: String,
        /// The mismatch.
        #[source]
        source: TypeMismatch,
    },
    /// A row with the wrong number of values.
    #[error("table {table}: row has {got} values for {expected} columns")]
    RowShape {
        /// The table.
        table: TableId,
        /// Values in the row.
        got: usize,
        /// Columns in the schema.
        expected: usize,
    },
}

/// The header on the delete half of a key change: the row's new key.
pub const NEW_KEY_HEADER: &str = "__debezium.newkey";
/// The header on the create half of a key change: the row's old key.
pub const OLD_KEY_HEADER: &str = "__debezium.oldkey";

/// A key as Kafka Connect's default header converter (`SimpleHeaderConverter`) writes a
/// struct: a JSON object of its fields, `{"id":4}` (checked against Debezium 3.6 by
/// `tests/debezium_oracle.rs`). Headers are text whatever the record's encoding, so
/// this is the one place the envelope writes JSON.
fn key_header(key: &Payload) -> String {
    let mut out = String::new();
    if crate::encoding::json::write_value(&mut out, &key.schema, &key.datum).is_err() {
        out.clear();
    }
    out
}

const OP_CREATE: usize = 0;
const OP_UPDATE: usize = 1;
const OP_DELETE: usize = 2;
const OP_READ: usize = 3;
const OP_TRUNCATE: usize = 4;

/// Schemas of one table version.
#[derive(Debug)]
struct TableShapes {
    topic: Arc<str>,
    plan: columns::TablePlan,
    names: source_info::TableNames,
    data_collection: String,
    key: Option<Arc<ConnectSchema>>,
    envelope: Arc<ConnectSchema>,
}

#[derive(Debug)]
struct TransactionState {
    id: String,
    ts_ms: i64,
    total_order: i64,
    per_collection: Vec<(String, i64)>,
}

/// Turns change events into Debezium-shaped records. One per connector; stateful
/// (transaction counters, the previous commit LSN), so events must come in order.
#[derive(Debug)]
pub struct EnvelopeFormatter {
    config: EnvelopeConfig,
    modes: TypeModes,
    source: source_info::SourceInfo,
    transaction_block: Arc<ConnectSchema>,
    tables: HashMap<(TableId, SchemaVersion), Arc<TableShapes>>,
    /// The table of the previous event: consecutive events of one table (the common
    /// case) skip the map lookup. Holds the `Arc` so the pointer stays unique.
    last_table: Option<(Arc<TableSchema>, Arc<TableShapes>)>,
    /// Shared `op` strings: c, u, d, r, t.
    ops: [Arc<str>; 5],
    transaction: Option<TransactionState>,
    /// The position of the last commit seen (Postgres' `source.sequence` names it).
    previous_commit: Option<SourcePosition>,
    /// The source block's values of the current event (kept to reuse its buffer).
    source_scratch: Vec<SourceValue>,
    heartbeat: SideChannel,
    transaction_metadata: SideChannel,
    schema_changes: Option<(Arc<str>, schema_change::SchemaChangeSchemas)>,
}

#[derive(Debug)]
struct SideChannel {
    topic: Arc<str>,
    key: Arc<ConnectSchema>,
    value: Arc<ConnectSchema>,
}

fn required(kind: SchemaKind) -> ConnectSchema {
    ConnectSchema::new(kind)
}

/// A required, version-1 record of a side channel (heartbeat, transaction metadata).
fn side_record(name: &str, fields: Vec<Field>) -> Arc<ConnectSchema> {
    Arc::new(ConnectSchema::record(name, fields).versioned(1))
}

fn optional(kind: SchemaKind) -> ConnectSchema {
    ConnectSchema::new(kind).optional()
}

impl EnvelopeFormatter {
    /// A formatter for one connector.
    pub fn new(config: EnvelopeConfig) -> Self {
        let modes = TypeModes {
            decimal: config.decimal_mode,
            time: config.time_mode,
            binary: config.binary_mode,
            interval: config.interval_mode,
        };
        let transaction_block = Arc::new(
            ConnectSchema::record(
                "event.block",
                vec![
                    Field::new("id", required(SchemaKind::String)),
                    Field::new("total_order", required(SchemaKind::Int64)),
                    Field::new("data_collection_order", required(SchemaKind::Int64)),
                ],
            )
            .versioned(1)
            .optional(),
        );
        let d = &config.topic_delimiter;
        let heartbeat = SideChannel {
            topic: format!("{}{d}{}", config.heartbeat_prefix, config.topic_prefix).into(),
            key: side_record(
                "io.debezium.connector.common.ServerNameKey",
                vec![Field::new("serverName", required(SchemaKind::String))],
            ),
            value: side_record(
                "io.debezium.connector.common.Heartbeat",
                vec![Field::new("ts_ms", required(SchemaKind::Int64))],
            ),
        };
        let collection = ConnectSchema::record(
            "event.collection",
            vec![
                Field::new("data_collection", required(SchemaKind::String)),
                Field::new("event_count", required(SchemaKind::Int64)),
            ],
        )
        .versioned(1)
        .optional();
        let transaction_metadata = SideChannel {
            topic: format!("{}{d}{}", config.topic_prefix, config.transaction_topic).into(),
            key: side_record(
                "io.debezium.connector.common.TransactionMetadataKey",
                vec![Field::new("id", required(SchemaKind::String))],
            ),
            value: side_record(
                "io.debezium.connector.common.TransactionMetadataValue",
                vec![
                    Field::new("status", required(SchemaKind::String)),
                    Field::new("id", required(SchemaKind::String)),
                    Field::new("event_count", optional(SchemaKind::Int64)),
                    Field::new(
                        "data_collections",
                        optional(SchemaKind::Array(Arc::new(collection))),
                    ),
                    Field::new("ts_ms", required(SchemaKind::Int64)),
                ],
            ),
        };
        let source = source_info::SourceInfo::new(&config);
        let schema_changes = (config.include_schema_changes && config.source.schema_change_topic())
            .then(|| {
                (
                    Arc::from(config.topic_prefix.as_str()),
                    schema_change::SchemaChangeSchemas::new(
                        config.source.connector(),
                        source.schema(),
                    ),
                )
            });
        Self {
            schema_changes,
            source,
            last_table: None,
            ops: ["c", "u", "d", "r", "t"].map(Arc::from),
            config,
            modes,
            transaction_block,
            tables: HashMap::new(),
            transaction: None,
            previous_commit: None,
            source_scratch: Vec::new(),
            heartbeat,
            transaction_metadata,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EnvelopeConfig {
        &self.config
    }

    /// The topic of a table's data-change records.
    pub fn topic_for(&self, table: &TableId) -> String {
        let d = &self.config.topic_delimiter;
        format!(
            "{}{d}{}{d}{}",
            self.config.topic_prefix, table.namespace, table.table
        )
    }

    fn shapes(&mut self, table: &Arc<TableSchema>) -> Arc<TableShapes> {
        if let Some((last, shapes)) = &self.last_table
            && Arc::ptr_eq(last, table)
        {
            return Arc::clone(shapes);
        }
        let shapes = self.shapes_by_id(table);
        self.last_table = Some((Arc::clone(table), Arc::clone(&shapes)));
        shapes
    }

    fn shapes_by_id(&mut self, table: &TableSchema) -> Arc<TableShapes> {
        let key = (table.id.clone(), table.version);
        if let Some(shapes) = self.tables.get(&key) {
            return Arc::clone(shapes);
        }
        let topic = self.topic_for(&table.id);
        let rules = &self.config.columns;
        let plan = rules.plan(table);
        let record_name =
            |suffix: &str| rules.schema_names.adjust_full(&format!("{topic}.{suffix}"));
        let placeholder = &self.config.unavailable_placeholder;
        let column = |index: usize| {
            let c = &table.columns[index];
            let mut schema = column_schema(&c.data_type, self.modes);
            schema.optional = c.nullable;
            // A declared constant default becomes the schema default, as Debezium has it;
            // a default that does not fit the column's type is left out.
            schema.default = c
                .default
                .as_ref()
                .and_then(|d| column_datum(d, &c.data_type, self.modes, placeholder).ok())
                .filter(|d| !d.is_null());
            if c.comment.is_some() {
                schema.doc.clone_from(&c.comment);
            }
            Field::new(rules.field_names.adjust(&c.name), schema)
        };
        let key_schema = (!plan.key.is_empty()).then(|| {
            Arc::new(ConnectSchema::record(
                record_name("Key"),
                plan.key.iter().map(|&i| column(i)).collect(),
            ))
        });
        let value = Arc::new(
            ConnectSchema::record(
                record_name("Value"),
                plan.columns
                    .iter()
                    .map(|planned| {
                        let mut field = column(planned.index);
                        // Debezium marks a masked or hashed column's schema, and gives a
                        // truncated one's length.
                        let parameter = match &planned.transform {
                            Some(
                                columns::ColumnTransform::Mask(_)
                                | columns::ColumnTransform::Hash { .. },
                            ) => Some(("masked".to_owned(), "true".to_owned())),
                            Some(columns::ColumnTransform::Truncate(n)) => {
                                Some(("truncateLength".to_owned(), n.to_string()))
                            }
                            None => None,
                        };
                        if let Some(parameter) = parameter {
                            Arc::make_mut(&mut field.schema).parameters.push(parameter);
                        }
                        field
                    })
                    .collect(),
            )
            .optional(),
        );
        let envelope = Arc::new(
            ConnectSchema::record(
                record_name("Envelope"),
                vec![
                    Field::new("before", Arc::clone(&value)),
                    Field::new("after", Arc::clone(&value)),
                    Field::new("source", Arc::clone(self.source.schema())),
                    Field::new("transaction", Arc::clone(&self.transaction_block)),
                    Field::new("op", required(SchemaKind::String)),
                    Field::new("ts_ms", optional(SchemaKind::Int64)),
                    Field::new("ts_us", optional(SchemaKind::Int64)),
                    Field::new("ts_ns", optional(SchemaKind::Int64)),
                ],
            )
            .versioned(2),
        );
        let shapes = Arc::new(TableShapes {
            topic: topic.into(),
            plan,
            names: source_info::TableNames {
                namespace: table.id.namespace.as_str().into(),
                table: table.id.table.as_str().into(),
            },
            data_collection: table.id.to_string(),
            key: key_schema,
            envelope,
        });
        // Older versions of the same table are not needed once a newer one is in use.
        self.tables
            .retain(|(id, version), _| id != &table.id || *version > table.version);
        self.tables.insert(key, Arc::clone(&shapes));
        shapes
    }

    fn column_value(
        &self,
        table: &TableSchema,
        index: usize,
        row: &[Value],
    ) -> Result<Datum, EnvelopeError> {
        let (Some(value), Some(column)) = (row.get(index), table.columns.get(index)) else {
            return Err(EnvelopeError::RowShape {
                table: table.id.clone(),
                got: row.len(),
                expected: table.columns.len(),
            });
        };
        if value.is_null() && !column.nullable {
            return Ok(types::fallback_datum(&column_schema(
                &column.data_type,
                self.modes,
            )));
        }
        column_datum(
            value,
            &column.data_type,
            self.modes,
            &self.config.unavailable_placeholder,
        )
        .map_err(|source| EnvelopeError::Column {
            table: table.id.clone(),
            column: column.name.clone(),
            source,
        })
    }

    fn row_datum(
        &self,
        table: &TableSchema,
        plan: &columns::TablePlan,
        row: &[Value],
    ) -> Result<Datum, EnvelopeError> {
        if row.len() != table.columns.len() {
            return Err(EnvelopeError::RowShape {
                table: table.id.clone(),
                got: row.len(),
                expected: table.columns.len(),
            });
        }
        let mut fields = Vec::with_capacity(plan.columns.len());
        for planned in &plan.columns {
            let datum = self.column_value(table, planned.index, row)?;
            fields.push(match (&planned.transform, datum.as_str()) {
                (Some(transform), Some(text)) => Datum::String(transform.apply(text)),
                // Debezium's mask replaces every value, NULL included.
                (Some(transform @ columns::ColumnTransform::Mask(_)), None)
                    if matches!(datum, Datum::Null) =>
                {
                    Datum::String(transform.apply(""))
                }
                (_, _) => datum,
            });
        }
        Ok(Datum::Struct(fields))
    }

    fn key_datum(
        &self,
        table: &TableSchema,
        plan: &columns::TablePlan,
        row: &[Value],
    ) -> Result<Datum, EnvelopeError> {
        let fields = plan
            .key
            .iter()
            .map(|&i| self.column_value(table, i, row))
            .collect::<Result<_, _>>()?;
        Ok(Datum::Struct(fields))
    }

    fn skipped(&self, op: Operation) -> bool {
        self.config.skipped_operations.contains(&op)
    }

    /// Appends the records of `event` to `out`. `now_us` is the processing time (the
    /// envelope's `ts_ms`/`ts_us`/`ts_ns`).
    pub fn format(
        &mut self,
        event: &ChangeEvent,
        now_us: i64,
        out: &mut Vec<Record>,
    ) -> Result<(), EnvelopeError> {
        let source_us = event.source_ts_us.unwrap_or(now_us);
        match &event.kind {
            EventKind::Begin(boundary) => {
                self.transaction = Some(TransactionState {
                    id: boundary.id.clone(),
                    ts_ms: source_us.div_euclid(1000),
                    total_order: 0,
                    per_collection: Vec::new(),
                });
                if self.config.provide_transaction_metadata {
                    out.push(self.transaction_record(event, "BEGIN"));
                }
            }
            EventKind::Commit(_) => {
                if self.config.provide_transaction_metadata && self.transaction.is_some() {
                    out.push(self.transaction_record(event, "END"));
                }
                self.transaction = None;
                self.previous_commit = Some(event.position.clone());
            }
            EventKind::Insert { table, after } => {
                if !self.skipped(Operation::Create) {
                    self.change(event, table, None, Some(after), OP_CREATE, now_us, out)?;
                }
            }
            EventKind::Update {
                table,
                before,
                after,
            } => {
                if !self.skipped(Operation::Update) {
                    match (before, self.changed_key(table, before.as_ref(), after)?) {
                        (Some(old_row), Some(keys)) => {
                            self.key_change(event, table, old_row, after, keys, now_us, out)?;
                        }
                        _ => self.change(
                            event,
                            table,
                            before.as_ref(),
                            Some(after),
                            OP_UPDATE,
                            now_us,
                            out,
                        )?,
                    }
                }
            }
            EventKind::Delete { table, before } => {
                if !self.skipped(Operation::Delete) {
                    self.change(event, table, Some(before), None, OP_DELETE, now_us, out)?;
                    self.tombstone(event, table, before, out)?;
                }
            }
            EventKind::Read { table, after, .. } => {
                self.change(event, table, None, Some(after), OP_READ, now_us, out)?;
            }
            EventKind::Truncate { tables } => {
                if !self.skipped(Operation::Truncate) {
                    for table in tables {
                        let shapes = self.shapes(table);
                        let value = self.envelope_datum(
                            event,
                            &shapes,
                            Datum::Null,
                            Datum::Null,
                            OP_TRUNCATE,
                            now_us,
                        );
                        out.push(Record {
                            topic: Arc::clone(&shapes.topic),
                            key: None,
                            value: Some(Payload {
                                schema: Arc::clone(&shapes.envelope),
                                datum: value,
                            }),
                            position: event.position.clone(),
                            kind: RecordKind::Change,
                            headers: Vec::new(),
                        });
                    }
                }
            }
            EventKind::Heartbeat => out.push(Record {
                topic: Arc::clone(&self.heartbeat.topic),
                key: Some(Payload {
                    schema: Arc::clone(&self.heartbeat.key),
                    datum: Datum::Struct(vec![Datum::String(self.config.topic_prefix.clone())]),
                }),
                value: Some(Payload {
                    schema: Arc::clone(&self.heartbeat.value),
                    datum: Datum::Struct(vec![Datum::Int64(now_us.div_euclid(1000))]),
                }),
                position: event.position.clone(),
                kind: RecordKind::Heartbeat,
                headers: Vec::new(),
            }),
            // On Postgres a schema change only changes which schema later rows use; MySQL
            // and MariaDB also publish it on the schema-change topic.
            EventKind::SchemaChange(change) => {
                if let Some((topic, schemas)) = &self.schema_changes {
                    let database = change.table.id.namespace.clone();
                    let names = source_info::TableNames {
                        namespace: database.as_str().into(),
                        table: change.table.id.table.as_str().into(),
                    };
                    let source = self
                        .source
                        .datum(event, &names, None, &mut self.source_scratch);
                    out.push(Record {
                        topic: Arc::clone(topic),
                        key: Some(Payload {
                            schema: Arc::clone(&schemas.key),
                            datum: Datum::Struct(vec![Datum::String(database.clone())]),
                        }),
                        value: Some(Payload {
                            schema: Arc::clone(&schemas.value),
                            datum: Datum::Struct(vec![
                                source,
                                Datum::Int64(source_us.div_euclid(1000)),
                                Datum::String(database),
                                Datum::Null,
                                schema_change::optional_text(change.ddl.as_deref()),
                                schema_change::table_changes(change),
                            ]),
                        }),
                        position: event.position.clone(),
                        kind: RecordKind::SchemaChange,
                        headers: Vec::new(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The tombstone after a delete of `before`'s key, when `tombstones.on.delete` and
    /// the table has a key.
    fn tombstone(
        &mut self,
        event: &ChangeEvent,
        table: &Arc<TableSchema>,
        before: &Row,
        out: &mut Vec<Record>,
    ) -> Result<(), EnvelopeError> {
        if !self.config.tombstones_on_delete {
            return Ok(());
        }
        let shapes = self.shapes(table);
        if let Some(key_schema) = &shapes.key {
            out.push(Record {
                topic: Arc::clone(&shapes.topic),
                key: Some(Payload {
                    schema: Arc::clone(key_schema),
                    datum: self.key_datum(table, &shapes.plan, before)?,
                }),
                value: None,
                position: event.position.clone(),
                kind: RecordKind::Tombstone,
                headers: Vec::new(),
            });
        }
        Ok(())
    }

    /// The old and the new key of an update that changes its row's key; `None` when the
    /// key stays (or the table has none, or the source sent no old image: Postgres sends
    /// the old key exactly when it changed).
    fn changed_key(
        &mut self,
        table: &Arc<TableSchema>,
        before: Option<&Row>,
        after: &Row,
    ) -> Result<Option<(Payload, Payload)>, EnvelopeError> {
        let Some(before) = before else {
            return Ok(None);
        };
        let shapes = self.shapes(table);
        let Some(schema) = &shapes.key else {
            return Ok(None);
        };
        let old = self.key_datum(table, &shapes.plan, before)?;
        let new = self.key_datum(table, &shapes.plan, after)?;
        Ok((old != new).then(|| {
            (
                Payload {
                    schema: Arc::clone(schema),
                    datum: old,
                },
                Payload {
                    schema: Arc::clone(schema),
                    datum: new,
                },
            )
        }))
    }

    /// An update that changes the row's key, as Debezium writes it: a delete of the old
    /// key and its tombstone (both with header `__debezium.newkey`), and a create of the
    /// new key (header `__debezium.oldkey`), so a compacted topic keeps no row under the
    /// old key.
    #[allow(clippy::too_many_arguments)]
    fn key_change(
        &mut self,
        event: &ChangeEvent,
        table: &Arc<TableSchema>,
        before: &Row,
        after: &Row,
        (old_key, new_key): (Payload, Payload),
        now_us: i64,
        out: &mut Vec<Record>,
    ) -> Result<(), EnvelopeError> {
        self.change(event, table, Some(before), None, OP_DELETE, now_us, out)?;
        if let Some(record) = out.last_mut() {
            record
                .headers
                .push((NEW_KEY_HEADER.to_owned(), key_header(&new_key)));
        }
        let records = out.len();
        self.tombstone(event, table, before, out)?;
        if out.len() > records
            && let Some(record) = out.last_mut()
        {
            record
                .headers
                .push((NEW_KEY_HEADER.to_owned(), key_header(&new_key)));
        }
        self.change(event, table, None, Some(after), OP_CREATE, now_us, out)?;
        if let Some(record) = out.last_mut() {
            record
                .headers
                .push((OLD_KEY_HEADER.to_owned(), key_header(&old_key)));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        event: &ChangeEvent,
        table: &Arc<TableSchema>,
        before: Option<&Row>,
        after: Option<&Row>,
        op: usize,
        now_us: i64,
        out: &mut Vec<Record>,
    ) -> Result<(), EnvelopeError> {
        let shapes = self.shapes(table);
        let before_datum = before
            .map(|r| self.row_datum(table, &shapes.plan, r))
            .transpose()?
            .unwrap_or(Datum::Null);
        let after_datum = after
            .map(|r| self.row_datum(table, &shapes.plan, r))
            .transpose()?
            .unwrap_or(Datum::Null);
        let key = match &shapes.key {
            Some(schema) => {
                let row = after.or(before).map_or(&[][..], Vec::as_slice);
                Some(Payload {
                    schema: Arc::clone(schema),
                    datum: self.key_datum(table, &shapes.plan, row)?,
                })
            }
            None => None,
        };
        let value = self.envelope_datum(event, &shapes, before_datum, after_datum, op, now_us);
        out.push(Record {
            topic: Arc::clone(&shapes.topic),
            key,
            value: Some(Payload {
                schema: Arc::clone(&shapes.envelope),
                datum: value,
            }),
            position: event.position.clone(),
            kind: RecordKind::Change,
            headers: Vec::new(),
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn envelope_datum(
        &mut self,
        event: &ChangeEvent,
        shapes: &TableShapes,
        before: Datum,
        after: Datum,
        op: usize,
        now_us: i64,
    ) -> Datum {
        let transaction = match (
            &mut self.transaction,
            self.config.provide_transaction_metadata,
        ) {
            (Some(tx), true) => {
                tx.total_order += 1;
                let per = match tx
                    .per_collection
                    .iter_mut()
                    .find(|(c, _)| *c == shapes.data_collection)
                {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        tx.per_collection.push((shapes.data_collection.clone(), 1));
                        1
                    }
                };
                let id = self
                    .config
                    .source
                    .transaction_id(event, &tx.id)
                    .unwrap_or_else(|| tx.id.clone());
                Datum::Struct(vec![
                    Datum::String(id),
                    Datum::Int64(tx.total_order),
                    Datum::Int64(per),
                ])
            }
            _ => Datum::Null,
        };
        let source = self.source.datum(
            event,
            &shapes.names,
            self.previous_commit.as_ref(),
            &mut self.source_scratch,
        );
        Datum::Struct(vec![
            before,
            after,
            source,
            transaction,
            Datum::Text(Arc::clone(&self.ops[op])),
            Datum::Int64(now_us.div_euclid(1000)),
            Datum::Int64(now_us),
            Datum::Int64(now_us.saturating_mul(1000)),
        ])
    }

    fn transaction_record(&self, event: &ChangeEvent, status: &str) -> Record {
        let (id, ts_ms, count, collections) = match &self.transaction {
            // The END record names the transaction as the source's Commit does (Postgres:
            // `<xid>:<end LSN>`, where BEGIN and the envelopes have `<xid>:<first LSN>`,
            // as Debezium writes them).
            Some(tx) if status == "END" => (
                match &event.kind {
                    EventKind::Commit(boundary) => boundary.id.clone(),
                    _ => tx.id.clone(),
                },
                tx.ts_ms,
                Datum::Int64(tx.total_order),
                Datum::Array(
                    tx.per_collection
                        .iter()
                        .map(|(c, n)| {
                            Datum::Struct(vec![Datum::String(c.clone()), Datum::Int64(*n)])
                        })
                        .collect(),
                ),
            ),
            Some(tx) => (tx.id.clone(), tx.ts_ms, Datum::Null, Datum::Null),
            None => (String::new(), 0, Datum::Null, Datum::Null),
        };
        Record {
            topic: Arc::clone(&self.transaction_metadata.topic),
            key: Some(Payload {
                schema: Arc::clone(&self.transaction_metadata.key),
                datum: Datum::Struct(vec![Datum::String(id.clone())]),
            }),
            value: Some(Payload {
                schema: Arc::clone(&self.transaction_metadata.value),
                datum: Datum::Struct(vec![
                    Datum::String(status.into()),
                    Datum::String(id),
                    count,
                    collections,
                    Datum::Int64(ts_ms),
                ]),
            }),
            position: event.position.clone(),
            kind: RecordKind::TransactionMetadata,
            headers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
