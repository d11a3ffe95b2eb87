//! The daemon's parts as a library, so that the `outflow` binary, fuzz targets and
//! in-process tests share them: worker config, the connector supervisor and validation,
//! metrics, the REST API and the embedded state store. It wires the connector crates
//! together and holds no CDC logic.

pub mod allocator;
pub mod config;
pub mod connectors;
pub mod fuzzing;
pub mod metrics;
pub mod migrate;
pub mod panics;
pub mod properties;
pub mod rest;
pub mod sinks;
pub mod sources;
pub mod state;
