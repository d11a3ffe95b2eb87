//! outflow-interchange: the record stage, everything between a typed change event and the
//! bytes a sink stores.
//!
//! - [`connect`]: Kafka Connect's schema and data model (structs, optionals, logical types);
//! - [`envelope`]: change events → Debezium-shaped records (key, value envelope, source
//!   block, topic names, heartbeats, transaction metadata, schema-change records) under the
//!   connector's type modes and column rules;
//! - [`transforms`]: Kafka Connect's single message transforms and predicates that Debezium
//!   users configure (`transforms=…`);
//! - [`encoding`]: Avro (Confluent's AvroConverter mapping and wire format) and
//!   JsonConverter bytes, the schema-registry client and serializer, and
//!   [`encoding::RecordEncoder`], the converter a connector is configured with;
//! - [`avro_file`], [`parquet_file`]: the file formats of the lake's raw zone;
//! - [`stage`]: [`RecordSink`], what a sink implements (transport and durability over
//!   already-formatted records), and [`RecordStage`], the one adapter that turns any record
//!   sink into an `outflow_core::Sink` and holds the format → transform loop.
//!
//! The layers above it (`outflow-core`) know nothing of records; the sinks below it know
//! nothing of events or envelopes. Records are formatted by reference from the event (the
//! row values are read, not copied, until they are encoded).

pub mod avro_file;
pub mod connect;
pub mod encoding;
pub mod envelope;
pub mod parquet_file;
pub mod stage;
pub mod transforms;

pub use envelope::Record;
pub use stage::{RecordSink, RecordStage};
