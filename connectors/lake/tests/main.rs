//! Integration tests of the lake sink: files read back with readers outside outflow
//! (the `apache-avro` crate, flate2 + serde_json), recovery after interrupted writes, and
//! Postgres → lake end to end against the testkit's real Postgres.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

/// The daemon's allocator, so throughput figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod conformance;
mod files;
mod object_store_live;
mod postgres_live;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use outflow_interchange::envelope::{EnvelopeConfig, EnvelopeFormatter};
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;

pub(crate) fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

pub(crate) fn formatter(prefix: &str) -> EnvelopeFormatter {
    EnvelopeFormatter::new(
        EnvelopeConfig::from_properties(
            &POSTGRES_SOURCE_BLOCK,
            &props(&[("topic.prefix", prefix), ("database.dbname", "shop")]),
        )
        .unwrap(),
    )
}

/// Visible data files under `root` (not `_schemas`, not temporary), in name order
/// within each directory.
pub(crate) fn visible_files(root: &Path) -> Vec<PathBuf> {
    outflow_lake::layout::walk(root)
        .unwrap()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect()
}

/// Every Avro record in `files`, in file order, read with the `apache-avro` crate.
pub(crate) fn read_avro(files: &[PathBuf]) -> Vec<apache_avro::types::Value> {
    let mut records = Vec::new();
    for file in files {
        let reader = apache_avro::Reader::new(std::fs::File::open(file).unwrap()).unwrap();
        for value in reader {
            records.push(value.unwrap());
        }
    }
    records
}

/// A field of an Avro record (unwrapping unions).
pub(crate) fn field<'a>(
    value: &'a apache_avro::types::Value,
    name: &str,
) -> &'a apache_avro::types::Value {
    use apache_avro::types::Value;
    let value = match value {
        Value::Union(_, inner) => inner.as_ref(),
        other => other,
    };
    match value {
        Value::Record(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| match v {
                Value::Union(_, inner) => inner.as_ref(),
                other => other,
            })
            .unwrap_or_else(|| panic!("no field {name}")),
        other => panic!("not a record: {other:?}"),
    }
}
