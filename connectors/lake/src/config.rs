//! The lake sink's settings, read from connector properties (the worker's `lake.*`
//! settings merged in by the caller). Pure: [`LakeSinkConfig::from_properties`] does no
//! I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use outflow_core::config::PropertyError;

use outflow_interchange::avro_file::AvroCodec;
use outflow_interchange::parquet_file::ParquetCodec;

/// The names `lake.format` takes.
pub const FORMAT_NAMES: [&str; 3] = ["avro", "json", "parquet"];

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

/// Where the files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeTarget {
    /// A local directory.
    Local(PathBuf),
    /// An object store (`s3://bucket/prefix`, `gs://…`, `az://…`, `abfss://…`).
    ObjectStore {
        /// The URL.
        url: String,
        /// Options for the `object_store` builders (`aws_endpoint`, `aws_region`,
        /// `aws_access_key_id`, …): `AWS_*`/`GOOGLE_*`/`AZURE_*` environment variables,
        /// then `lake.store.<option>` properties.
        options: StoreOptions,
    },
}

/// Object-store options; Debug masks values of secret-looking keys.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StoreOptions(pub BTreeMap<String, String>);

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let secret = outflow_core::config::is_secret(k);
                (k, if secret { "********" } else { v.as_str() })
            }))
            .finish()
    }
}

/// Validated settings of a lake sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeSinkConfig {
    /// The connector's name (file-name prefix).
    pub connector: String,
    /// Where files are written locally: the lake itself for a local target, the staging
    /// directory (`lake.staging.dir`) for an object store.
    pub root: PathBuf,
    /// The target (`lake.path`).
    pub target: LakeTarget,
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
    /// Reads `lake.path` (required: a directory or an object-store URL; with a URL,
    /// `lake.staging.dir` and `lake.store.*`), `lake.format` (`avro` default, `json`, `parquet`),
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
        let root = root.trim();
        let (local_root, target) = if root.contains("://") {
            let parsed = url::Url::parse(root)
                .map_err(|e| PropertyError::new("lake.path", root, format!("not a URL: {e}")))?;
            if !matches!(
                parsed.scheme(),
                "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "file"
            ) {
                return Err(PropertyError::new(
                    "lake.path",
                    root,
                    "expected a directory or an s3://, gs://, az:// or abfss:// URL",
                ));
            }
            let mut options: BTreeMap<String, String> = std::env::vars()
                .filter(|(k, _)| {
                    k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
                })
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            for (k, v) in props {
                if let Some(option) = k.strip_prefix("lake.store.") {
                    options.insert(option.to_owned(), v.clone());
                }
            }
            let staging = props
                .get("lake.staging.dir")
                .map(|d| PathBuf::from(d.trim()))
                .unwrap_or_else(|| std::env::temp_dir().join("outflow-lake-staging"));
            (
                staging,
                LakeTarget::ObjectStore {
                    url: root.to_owned(),
                    options: StoreOptions(options),
                },
            )
        } else {
            (PathBuf::from(root), LakeTarget::Local(PathBuf::from(root)))
        };
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
            root: local_root,
            target,
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
            (vec![("lake.path", "ftp://bucket/x")], "lake.path"),
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
