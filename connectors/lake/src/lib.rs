//! outflow-lake: the raw-zone data-lake sink, outflow's embedded default.
//!
//! - [`layout`]: directory layout, file names, position tokens;
//! - [`avro_file`]: Avro object container files;
//! - [`parquet_file`]: Parquet files with the envelope flattened into columns;
//! - [`config`]: the sink's properties;
//! - [`sink`]: the [`LakeSink`] and its exactly-once file protocol.

pub mod avro_file;
pub mod config;
pub mod layout;
pub mod parquet_file;
pub mod sink;

pub use config::{LakeFormat, LakeSinkConfig, LakeTarget, StoreOptions};
pub use sink::{LakeMetrics, LakeSink, Recovery, recover};
