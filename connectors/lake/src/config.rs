//! The lake sink's settings, read from connector properties (the worker's `lake.*`
//! settings merged in by the caller). Pure: [`LakeSinkConfig::from_properties`] does no
//! I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use outflow_core::envelope::PropertyError;

use crate::avro_file::AvroCodec;
use crate::parquet_file::ParquetCodec;

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LakeFormat {
    /// Avro object container files; the file carries its writer schema.
    Avro(AvroCodec),
    /// JSON lines of the Debezium envelope (the value, without schema).
    Json {
        /// Gzip the file (`.jsonl.gz`).
        gzip: bool,
    },
    /// Parquet with the envelope flattened into `before.*`/`after.*`/`source.*` columns.
    Parquet(ParquetCodec),
}

impl LakeFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Avro(_) => "avro",
            Self::Json { gzip: false } => "jsonl",
            Self::Json { gzip: true } => "jsonl.gz",
            Self::Parquet(_) => "parquet",
        }
    }
}

/// Validated settings of a lake sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeSinkConfig {
    /// The connector's name (file-name prefix).
    pub connector: String,
    /// Root directory (`lake.path`).
    pub root: PathBuf,
    /// Format and compression (`lake.format`, `lake.compression`).
    pub format: LakeFormat,
    /// Roll after this many records in one file (`lake.flush.size`, default 100,000).
    pub flush_size: u64,
    /// Roll once a file holds this many bytes (`lake.file.max.bytes`, default 128 MiB).
    pub file_max_bytes: u64,
    /// Roll at least this often (`flush.interval.ms`, default 10 s): the caller runs the
    /// pipeline's checkpoint at this interval, and every checkpoint rolls.
    pub flush_interval: Duration,
    /// Roll once this many batches wait for durability (keeps the pipeline's in-flight
    /// bound from stalling the source; default 32).
    pub max_pending_batches: usize,
}

fn positive(
    props: &BTreeMap<String, String>,
    key: &str,
    default: u64,
) -> Result<u64, PropertyError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| PropertyError::new(key, v, "expected a positive number")),
    }
}

impl LakeSinkConfig {
    /// Reads `lake.path` (required), `lake.format` (`avro` default, `json`, `parquet`),
    /// `lake.compression` (Avro: `snappy` default, `deflate`, `null`; JSON: `none`
    /// default, `gzip`; Parquet: `snappy` default, `zstd`, `none`), `lake.flush.size`, `lake.file.max.bytes`, `flush.interval.ms`.
    pub fn from_properties(
        connector: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Self, PropertyError> {
        let root = props
            .get("lake.path")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| PropertyError::new("lake.path", "", "required"))?;
        if root.contains("://") {
            return Err(PropertyError::new(
                "lake.path",
                root,
                "object-store URLs are not supported yet; give a directory",
            ));
        }
        let compression = props
            .get("lake.compression")
            .map(|v| v.trim().to_ascii_lowercase());
        let format_name = props
            .get("lake.format")
            .map_or("avro".to_owned(), |v| v.trim().to_ascii_lowercase());
        let bad_compression = |allowed: &str| {
            PropertyError::new(
                "lake.compression",
                compression.clone().unwrap_or_default(),
                format!("expected one of {allowed} for lake.format={format_name}"),
            )
        };
        let format = match format_name.as_str() {
            "avro" => LakeFormat::Avro(match compression.as_deref() {
                None | Some("snappy") => AvroCodec::Snappy,
                Some("deflate") => AvroCodec::Deflate,
                Some("null" | "none") => AvroCodec::Null,
                Some(_) => return Err(bad_compression("snappy, deflate, null")),
            }),
            "json" => LakeFormat::Json {
                gzip: match compression.as_deref() {
                    None | Some("none" | "null") => false,
                    Some("gzip") => true,
                    Some(_) => return Err(bad_compression("none, gzip")),
                },
            },
            "parquet" => LakeFormat::Parquet(match compression.as_deref() {
                None | Some("snappy") => ParquetCodec::Snappy,
                Some("zstd") => ParquetCodec::Zstd,
                Some("none" | "null" | "uncompressed") => ParquetCodec::Uncompressed,
                Some(_) => return Err(bad_compression("snappy, zstd, none")),
            }),
            other => {
                return Err(PropertyError::new(
                    "lake.format",
                    other,
                    "expected avro, json or parquet",
                ));
            }
        };
        let max_pending = positive(props, "lake.max.pending.batches", 32)?;
        Ok(Self {
            connector: connector.to_owned(),
            root: PathBuf::from(root.trim()),
            format,
            flush_size: positive(props, "lake.flush.size", 100_000)?,
            file_max_bytes: positive(props, "lake.file.max.bytes", 128 << 20)?,
            flush_interval: Duration::from_millis(positive(props, "flush.interval.ms", 10_000)?),
            max_pending_batches: usize::try_from(max_pending).unwrap_or(usize::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_and_errors_name_the_property() {
        let config =
            LakeSinkConfig::from_properties("c", &props(&[("lake.path", "/tmp/l")])).unwrap();
        assert_eq!(config.format, LakeFormat::Avro(AvroCodec::Snappy));
        assert_eq!(config.flush_size, 100_000);
        assert_eq!(config.flush_interval, Duration::from_secs(10));
        for (pairs, property) in [
            (vec![], "lake.path"),
            (
                vec![("lake.path", "/x"), ("lake.format", "orc")],
                "lake.format",
            ),
            (
                vec![("lake.path", "/x"), ("lake.compression", "lz4")],
                "lake.compression",
            ),
            (
                vec![
                    ("lake.path", "/x"),
                    ("lake.format", "json"),
                    ("lake.compression", "snappy"),
                ],
                "lake.compression",
            ),
            (
                vec![("lake.path", "/x"), ("lake.flush.size", "0")],
                "lake.flush.size",
            ),
            (
                vec![("lake.path", "/x"), ("flush.interval.ms", "soon")],
                "flush.interval.ms",
            ),
            (vec![("lake.path", "s3://bucket/x")], "lake.path"),
        ] {
            let e = LakeSinkConfig::from_properties("c", &props(&pairs)).unwrap_err();
            assert_eq!(e.property, property);
        }
        let json = LakeSinkConfig::from_properties(
            "c",
            &props(&[
                ("lake.path", "/x"),
                ("lake.format", "json"),
                ("lake.compression", "gzip"),
            ]),
        )
        .unwrap();
        assert_eq!(json.format.extension(), "jsonl.gz");
    }
}
