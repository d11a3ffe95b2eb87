//! outflow-core: the typed change-event model and the contracts every connector holds to.
//!
//! - [`value`], [`schema`]: typed column values and versioned table schemas;
//! - [`position`]: totally ordered source positions with a stable serialised form;
//! - [`event`]: change events and batches;
//! - [`source`], [`sink`], [`offsets`]: the traits of a change stream, a destination with
//!   explicit Accepted/Durable acknowledgement, and resume-point storage;
//! - [`connector`]: what a source crate tells the worker (classes, validation, metrics);
//! - [`metrics`]: the metric families connector crates expose;
//! - [`snapshot`]: the ordered parallel reads and the marks every snapshot shares;
//! - [`pipeline`]: the runner joining them with bounded channels;
//! - [`error`]: per-layer errors classified as transient or definite;
//! - [`retry`]: the one backoff schedule transient errors are retried on;
//! - [`config`]: the property-validation primitives every layer shares.
//!
//! This crate does no network I/O and knows no database; connector crates depend on it,
//! never on each other. What an event looks like as a record (the Debezium envelope, the
//! Connect data model, the encodings and file formats, the transforms) is the record
//! stage, `outflow-interchange`.

pub mod config;
pub mod connector;
pub mod error;
pub mod event;
pub mod fixtures;
pub mod metrics;
pub mod offsets;
pub mod pipeline;
pub mod position;
pub mod retry;
pub mod schema;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod source_block;
pub mod value;

pub use connector::{
    BoxedSource, ConnectorClass, SnapshotProgress, SourceEnv, SourceMetrics, SourcePlan,
    SourcePlugin,
};
pub use error::{
    Classify, ErrorClass, OffsetStoreError, PipelineError, SinkError, SourceError, peer_hung_up,
};
pub use event::{
    ChangeEvent, EventBatch, EventKind, Row, SchemaChange, SchemaChangeKind, SnapshotMark,
    TransactionBoundary, now_us,
};
pub use metrics::{MetricKind, MetricSample, NoSinkMetrics, SinkMetrics};
pub use offsets::{CommitOutcome, MemoryOffsetStore, OffsetStore};
pub use pipeline::{OpCounts, Pipeline, PipelineConfig, PipelineMetrics, PipelineReport};
pub use position::{
    InvalidPosition, ORDER_WORDS, PositionDetail, PositionFamily, SEQUENCE, SequenceFamily,
    SourcePosition,
};
pub use retry::{Backoff, RetryPolicy};
pub use schema::{ColumnSchema, DataType, SchemaVersion, TableId, TableSchema};
pub use sink::{
    BoxedSink, DurableHandle, DurableNotifier, MemorySink, MemorySinkMode, NullSink, Sink,
};
pub use source::{DurableWatch, EventSender, ResourceLedger, Source, SourceContext};
pub use source_block::{SourceBlock, SourceBlockInput, SourceField, SourceFieldKind, SourceValue};
pub use value::{Decimal, Interval, Value};
