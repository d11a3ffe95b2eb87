//! outflow-core: the typed change-event model and the contracts every connector holds to.
//!
//! - [`value`], [`schema`]: typed column values and versioned table schemas;
//! - [`position`]: totally ordered source positions with a stable serialised form;
//! - [`event`]: change events and batches;
//! - [`source`], [`sink`], [`offsets`]: the traits of a change stream, a destination with
//!   explicit Accepted/Durable acknowledgement, and resume-point storage;
//! - [`pipeline`]: the runner joining them with bounded channels;
//! - [`error`]: per-layer errors classified as transient or definite;
//! - [`connect`], [`envelope`], [`encoding`]: Debezium-shaped records as Kafka Connect
//!   schemas and data, and their Avro / JSON bytes (no network I/O: the registry client
//!   lives with the sinks).
//!
//! This crate does no network I/O and knows no database; connector crates depend on it,
//! never on each other.

pub mod connect;
pub mod encoding;
pub mod envelope;
pub mod error;
pub mod event;
pub mod fixtures;
pub mod offsets;
pub mod pipeline;
pub mod position;
pub mod schema;
pub mod sink;
pub mod source;
pub mod transforms;
pub mod value;

pub use error::{
    Classify, ErrorClass, OffsetStoreError, PipelineError, SinkError, SourceError, peer_hung_up,
};
pub use event::{
    BinlogDetail, ChangeEvent, EventBatch, EventKind, Row, SchemaChange, SchemaChangeKind,
    SnapshotMark, TransactionBoundary,
};
pub use offsets::{CommitOutcome, MemoryOffsetStore, OffsetStore};
pub use pipeline::{OpCounts, Pipeline, PipelineConfig, PipelineMetrics, PipelineReport};
pub use position::{
    BinlogPosition, Lsn, PgPosition, SnapshotCursor, SnapshotReads, SnapshotSegment, SourcePosition,
};
pub use schema::{ColumnSchema, DataType, SchemaVersion, TableId, TableSchema};
pub use sink::{DurableHandle, DurableNotifier, MemorySink, MemorySinkMode, NullSink, Sink};
pub use source::{DurableWatch, EventSender, ResourceLedger, Source, SourceContext};
pub use value::{Decimal, Interval, Value};
