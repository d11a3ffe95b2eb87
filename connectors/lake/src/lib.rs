//! outflow-lake: the raw-zone data-lake sink, outflow's embedded default.
//!
//! - [`layout`]: directory layout, file names, position tokens;
//! - the file formats (Avro object container files, Parquet) are the record stage's
//!   (`outflow_interchange::avro_file`, `outflow_interchange::parquet_file`);
//! - [`config`]: the sink's properties;
//! - [`sink`]: the [`LakeSink`] (a record sink) and its exactly-once file protocol.

pub mod config;
pub mod layout;
pub mod plugin;
pub mod sink;

pub use config::{LakeFormat, LakeSinkConfig, LakeTarget, StoreOptions};
pub use plugin::LakePlugin;
pub use sink::{LakeMetrics, LakeSink, Recovery, recover};
