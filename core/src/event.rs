//! Change events: what a source emits and a sink receives.
//!
//! A source emits, per source transaction, a [`EventKind::Begin`], the row events in
//! the order the database applied them, and a [`EventKind::Commit`]. Snapshot rows are
//! [`EventKind::Read`] events. Every event carries its [`SourcePosition`] (strictly
//! increasing within a connector) and every row event the [`TableSchema`] version it was
//! decoded with; rows are `Vec<Value>` in that schema's column order.
//!
//! Events travel in [`EventBatch`]es so that channels, acknowledgements and offset
//! commits cost per batch, not per event.

use std::sync::Arc;

use crate::position::SourcePosition;
use crate::schema::TableSchema;
use crate::value::Value;

/// Column values of one row, in the column order of the row's [`TableSchema`].
pub type Row = Vec<Value>;

/// Debezium's `source.snapshot` marker for snapshot rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnapshotMark {
    /// The first row of the whole snapshot.
    First,
    /// The first row of one table.
    FirstInDataCollection,
    /// A row in the middle of the snapshot.
    True,
    /// The last row of one table.
    LastInDataCollection,
    /// The last row of the whole snapshot.
    Last,
    /// A row read by an incremental (signal-driven) snapshot.
    Incremental,
}

impl SnapshotMark {
    /// The string Debezium writes in `source.snapshot`.
    pub fn as_debezium(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::FirstInDataCollection => "first_in_data_collection",
            Self::True => "true",
            Self::LastInDataCollection => "last_in_data_collection",
            Self::Last => "last",
            Self::Incremental => "incremental",
        }
    }
}

/// A transaction boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionBoundary {
    /// Transaction id as Debezium reports it (`<txId>:<lsn>` on Postgres, the GTID or
    /// `file:pos` on MySQL).
    pub id: String,
    /// On `Commit`: number of row events in the transaction.
    pub event_count: u64,
}

/// What a DDL statement did to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaChangeKind {
    /// The table was created.
    Create,
    /// The table was altered.
    Alter,
    /// The table was dropped.
    Drop,
}

impl SchemaChangeKind {
    /// Debezium's `tableChanges[].type`.
    pub fn as_debezium(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Alter => "ALTER",
            Self::Drop => "DROP",
        }
    }
}

/// A change of a table's shape (DDL), with the schema version it introduces.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChange {
    /// The table's new schema (its version is the new version); for a drop, its last one.
    pub table: Arc<TableSchema>,
    /// What happened.
    pub kind: SchemaChangeKind,
    /// The DDL statement, when the source has it (MySQL).
    pub ddl: Option<String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A source transaction starts.
    Begin(TransactionBoundary),
    /// A source transaction committed; every row event since `Begin` belongs to it.
    Commit(TransactionBoundary),
    /// A row was inserted.
    Insert {
        /// Schema the row was decoded with.
        table: Arc<TableSchema>,
        /// The new row.
        after: Row,
    },
    /// A row was updated.
    Update {
        /// Schema the rows were decoded with.
        table: Arc<TableSchema>,
        /// The old row, when the source sends it (Postgres REPLICA IDENTITY, MySQL FULL
        /// row image); on Postgres with the default identity only key columns are set.
        before: Option<Row>,
        /// The new row; unchanged TOAST columns are [`Value::Unavailable`].
        after: Row,
    },
    /// A row was deleted.
    Delete {
        /// Schema the row was decoded with.
        table: Arc<TableSchema>,
        /// The old row (or its key columns only).
        before: Row,
    },
    /// Tables were truncated.
    Truncate {
        /// The truncated tables, with their current schemas.
        tables: Vec<Arc<TableSchema>>,
    },
    /// A row read by a snapshot.
    Read {
        /// Schema the row was read with.
        table: Arc<TableSchema>,
        /// The row.
        after: Row,
        /// Where in the snapshot the row stands.
        mark: SnapshotMark,
    },
    /// A table's shape changed.
    SchemaChange(SchemaChange),
    /// Nothing changed, but the source is alive at this position.
    Heartbeat,
}

impl EventKind {
    /// The table of a row event.
    pub fn table(&self) -> Option<&Arc<TableSchema>> {
        match self {
            Self::Insert { table, .. }
            | Self::Update { table, .. }
            | Self::Delete { table, .. }
            | Self::Read { table, .. } => Some(table),
            Self::SchemaChange(change) => Some(&change.table),
            Self::Begin(_) | Self::Commit(_) | Self::Truncate { .. } | Self::Heartbeat => None,
        }
    }

    /// True for events that describe a row (insert, update, delete, read).
    pub fn is_row(&self) -> bool {
        matches!(
            self,
            Self::Insert { .. } | Self::Update { .. } | Self::Delete { .. } | Self::Read { .. }
        )
    }
}

/// One change event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Where it comes from; strictly increasing within a connector.
    pub position: SourcePosition,
    /// When the database committed (or, for snapshot rows, read) it, in microseconds
    /// since the Unix epoch; `None` when the source does not know.
    pub source_ts_us: Option<i64>,
    /// What happened.
    pub kind: EventKind,
}

/// Events handed from a source to a sink in one piece, in position order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventBatch {
    /// The events, strictly increasing in position.
    pub events: Vec<ChangeEvent>,
}

impl EventBatch {
    /// A batch of these events.
    pub fn new(events: Vec<ChangeEvent>) -> Self {
        Self { events }
    }

    /// Position of the last event; what becomes durable when the batch does.
    pub fn last_position(&self) -> Option<&SourcePosition> {
        self.events.last().map(|e| &e.position)
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The wall clock in microseconds since the Unix epoch, the unit of every event timestamp
/// ([`ChangeEvent::source_ts_us`]); 0 for a clock before 1970, saturating far ahead.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
