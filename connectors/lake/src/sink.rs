//! The lake sink: formatted records (from the record stage) → files, exactly once.
//!
//! Exactly-once protocol (docs/design.md §6):
//!
//! 1. Records are appended to per-(topic, hour) files under temporary names
//!    ([`crate::layout`]). A batch is Accepted once appended.
//! 2. A **roll** finishes every open file at once: last block, `fsync` of the file,
//!    rename to the final name (`<connector>+<first>+<last>.<ext>`), `fsync` of each
//!    directory touched. Then every accepted batch is Durable, and only then does the
//!    pipeline commit the offset. A roll happens at each pipeline checkpoint (every
//!    `flush.interval.ms`), when a file reaches `lake.flush.size` records or
//!    `lake.file.max.bytes` bytes, when `lake.max.pending.batches` batches wait, and when
//!    a topic's schema changes (a file has one writer schema).
//! 3. Because a roll closes *all* files, batches become durable only at a roll, and the
//!    pipeline commits the batches of one roll with a single offset write (the last
//!    batch's position), every visible file lies wholly at or before the committed offset
//!    or wholly after it. A schema change closes the open files without making anything
//!    durable (they hold part of the batch being written). On
//!    start, [`LakeSink::start`] removes this connector's temporary files and every
//!    visible file whose last position is after the committed offset; the source then
//!    resends from the committed offset. So after any crash each event is in exactly one
//!    visible file, and the names are deterministic (derived from the positions).
//!
//! Tombstones and heartbeats are not written (they exist for Kafka's compaction and
//! liveness); their positions still advance the offset. Every writer schema is copied
//! once to `_schemas/<topic>/<fingerprint>.avsc`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use outflow_core::sink::durability;
use outflow_core::{DurableHandle, DurableNotifier, SinkError, SourcePosition};
use outflow_interchange::avro_file::{self, AvroBlocks};
use outflow_interchange::connect::ConnectSchema;
use outflow_interchange::encoding::avro::avro_schema;
use outflow_interchange::encoding::json;
use outflow_interchange::envelope::RecordKind;
use outflow_interchange::parquet_file::ParquetFile;
use outflow_interchange::{Record, RecordSink};
use rustc_hash::FxHashMap;

use crate::config::{LakeFormat, LakeSinkConfig, LakeTarget, StoreOptions};
use crate::layout::{self, LakeFile};

const WRITE_BUFFER: usize = 256 * 1024;

/// Counters of a lake sink, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct LakeMetrics {
    /// Records appended to files.
    pub records_written: AtomicU64,
    /// Files made visible.
    pub files_committed: AtomicU64,
    /// Bytes in visible files.
    pub bytes_committed: AtomicU64,
    /// Rolls (checkpoints) done.
    pub rolls: AtomicU64,
}

impl outflow_core::SinkMetrics for LakeMetrics {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    fn samples(&self) -> Vec<outflow_core::MetricSample> {
        let counter = |name, help, value: &AtomicU64| outflow_core::MetricSample {
            name,
            kind: outflow_core::MetricKind::Counter,
            help,
            value: value.load(std::sync::atomic::Ordering::Relaxed) as f64,
        };
        vec![
            counter(
                "outflow_lake_files_committed_total",
                "Lake files made visible.",
                &self.files_committed,
            ),
            counter(
                "outflow_lake_bytes_committed_total",
                "Bytes in visible lake files.",
                &self.bytes_committed,
            ),
            counter(
                "outflow_lake_records_written_total",
                "Records appended to lake files.",
                &self.records_written,
            ),
        ]
    }
}

enum Body {
    Avro {
        out: BufWriter<File>,
        blocks: AvroBlocks,
    },
    Json {
        out: BufWriter<File>,
    },
    JsonGzip {
        out: flate2::write::GzEncoder<BufWriter<File>>,
    },
    Parquet {
        out: Box<ParquetFile<BufWriter<File>>>,
    },
}

struct OpenFile {
    dir: PathBuf,
    temp: PathBuf,
    first: String,
    /// Position of the last record; its token is made once, when the file is finished.
    last: SourcePosition,
    records: u64,
    bytes: u64,
    schema: Arc<ConnectSchema>,
    body: Body,
}

impl OpenFile {
    /// Finishes the file: last block, flush, fsync. Returns the file.
    fn finish(self) -> std::io::Result<(PathBuf, PathBuf, String, String, u64)> {
        let file = match self.body {
            Body::Avro {
                mut out,
                mut blocks,
            } => {
                blocks.write_block(&mut out)?;
                out.into_inner()
                    .map_err(std::io::IntoInnerError::into_error)?
            }
            Body::Json { out } => out
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?,
            Body::JsonGzip { out } => out
                .finish()?
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?,
            Body::Parquet { out } => out
                .finish()
                .map_err(std::io::Error::other)?
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?,
        };
        file.sync_all()?;
        let size = file.metadata().map_or(0, |m| m.len());
        Ok((
            self.dir,
            self.temp,
            self.first,
            self.last.sort_token(),
            size,
        ))
    }
}

/// The lake sink of one connector.
pub struct LakeSink {
    config: LakeSinkConfig,
    prefix: String,
    /// Open files by (topic, hour since the epoch); FxHash: the lookup is per record.
    open: FxHashMap<(Arc<str>, i64), OpenFile>,
    pending: Vec<DurableNotifier>,
    schemas_written: HashSet<(Arc<str>, u64)>,
    line: String,
    metrics: Arc<LakeMetrics>,
    /// Set for an object-store target: files are staged under `config.root`.
    remote: Option<RemoteLake>,
    /// Staged files finished since the last full roll (object store only).
    staged: Vec<(PathBuf, u64)>,
    /// Schema copies written since the last full roll (object store only).
    staged_schemas: Vec<PathBuf>,
}

impl std::fmt::Debug for LakeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSink")
            .field("config", &self.config)
            .field("open_files", &self.open.len())
            .field("pending_batches", &self.pending.len())
            .finish_non_exhaustive()
    }
}

fn io_error(context: impl Into<String>, e: std::io::Error) -> SinkError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            SinkError::definite_with(context, "give outflow write access to lake.path", e)
        }
        _ => SinkError::transient(context, e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// 64-bit FNV-1a, seeded; for sync markers and schema fingerprints (not security).
fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What recovery did at start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Temporary files removed.
    pub temporary_removed: usize,
    /// Visible files removed because they lay past the committed offset.
    pub uncommitted_removed: usize,
    /// Visible files kept.
    pub kept: usize,
}

/// Removes the connector's temporary files and its files past `committed`.
pub fn recover(
    root: &Path,
    prefix: &str,
    committed: Option<&SourcePosition>,
) -> std::io::Result<Recovery> {
    let committed = committed.map(SourcePosition::sort_token);
    let mut report = Recovery::default();
    let mut touched = HashSet::new();
    for path in layout::walk(root)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let remove = match layout::classify(name, prefix) {
            None => continue,
            Some(LakeFile::Temporary) => {
                report.temporary_removed += 1;
                true
            }
            Some(LakeFile::Finished { last, .. }) => {
                let past = committed
                    .as_ref()
                    .is_none_or(|c| last.as_str() > c.as_str());
                if past {
                    report.uncommitted_removed += 1;
                } else {
                    report.kept += 1;
                }
                past
            }
        };
        if remove {
            tracing::info!(file = %path.display(), committed = committed.as_deref().unwrap_or("none"), "lake: removing a file past the committed offset");
            std::fs::remove_file(&path)?;
            if let Some(parent) = path.parent() {
                touched.insert(parent.to_path_buf());
            }
        }
    }
    for dir in touched {
        sync_dir(&dir)?;
    }
    Ok(report)
}

impl LakeSink {
    /// Prepares the root and removes what lies past `committed` (the connector's stored
    /// offset; `None` when it has none). The sink takes formatted records: wrap it in an
    /// [`outflow_interchange::RecordStage`] to give it change events.
    pub async fn start(
        config: LakeSinkConfig,
        committed: Option<SourcePosition>,
    ) -> Result<Self, SinkError> {
        let prefix = layout::file_prefix(&config.connector);
        let root = config.root.clone();
        let scan_prefix = prefix.clone();
        let remote = match &config.target {
            LakeTarget::Local(_) => None,
            LakeTarget::ObjectStore { url, options } => Some(RemoteLake::connect(url, options)?),
        };
        // Staged files of an object-store lake were never durable: all of them go.
        let staged_committed = if remote.is_some() {
            None
        } else {
            committed.clone()
        };
        let report = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&root)?;
            recover(&root, &scan_prefix, staged_committed.as_ref())
        })
        .await
        .map_err(|e| SinkError::transient("recovering the lake: the task failed", e))?
        .map_err(|e| {
            io_error(
                format!("recovering the lake at {}", config.root.display()),
                e,
            )
        })?;
        if report.uncommitted_removed > 0 || report.temporary_removed > 0 {
            tracing::info!(
                connector = %config.connector,
                temporary = report.temporary_removed,
                uncommitted = report.uncommitted_removed,
                kept = report.kept,
                "lake: removed files past the committed offset; they will be written again"
            );
        }
        if let Some(remote) = &remote {
            let (removed, kept) = remote.recover(&prefix, committed.as_ref()).await?;
            if removed > 0 {
                tracing::info!(connector = %config.connector, removed, kept, "lake: removed objects past the committed offset; they will be written again");
            }
        }
        Ok(Self {
            config,
            prefix,
            open: FxHashMap::default(),
            pending: Vec::new(),
            schemas_written: HashSet::new(),
            line: String::with_capacity(1024),
            metrics: Arc::new(LakeMetrics::default()),
            remote,
            staged: Vec::new(),
            staged_schemas: Vec::new(),
        })
    }

    /// Counts into `metrics` (kept by the caller across restarts of the connector).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<LakeMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The sink's counters.
    pub fn metrics(&self) -> Arc<LakeMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Copies `schema` to `_schemas/<topic>/<fingerprint>.avsc` once.
    fn write_schema_copy(&mut self, topic: &Arc<str>, schema_json: &str) -> Result<(), SinkError> {
        let fingerprint = fnv(0, schema_json.as_bytes());
        if !self
            .schemas_written
            .insert((Arc::clone(topic), fingerprint))
        {
            return Ok(());
        }
        let dir = self
            .config
            .root
            .join("_schemas")
            .join(layout::topic_dir(topic));
        let path = dir.join(format!("{fingerprint:016x}.avsc"));
        let result = (|| -> std::io::Result<()> {
            if path.exists() {
                return Ok(());
            }
            std::fs::create_dir_all(&dir)?;
            let temp = dir.join(format!(".{fingerprint:016x}.avsc.tmp"));
            let mut file = File::create(&temp)?;
            file.write_all(schema_json.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)?;
            sync_dir(&dir)
        })();
        result.map_err(|e| io_error(format!("writing schema copy {}", path.display()), e))?;
        if self.remote.is_some() {
            self.staged_schemas.push(path);
        }
        Ok(())
    }

    fn open_file(
        &mut self,
        topic: &Arc<str>,
        partition: &str,
        position: &SourcePosition,
        schema: &Arc<ConnectSchema>,
    ) -> Result<OpenFile, SinkError> {
        let schema_json = avro_schema(schema);
        self.write_schema_copy(topic, &schema_json)?;
        let dir = self
            .config
            .root
            .join(layout::topic_dir(topic))
            .join(partition);
        let extension = self.config.format.extension();
        let first = position.sort_token();
        let temp = dir.join(layout::temp_name(&self.prefix, &first, extension));
        let created = (|| -> std::io::Result<File> {
            std::fs::create_dir_all(&dir)?;
            File::create(&temp)
        })()
        .map_err(|e| io_error(format!("creating {}", temp.display()), e))?;
        let out = BufWriter::with_capacity(WRITE_BUFFER, created);
        let (body, bytes) = match self.config.format {
            LakeFormat::Avro(codec) => {
                let seed = fnv(1, self.prefix.as_bytes());
                let a = fnv(seed, first.as_bytes());
                let b = fnv(a, topic.as_bytes());
                let mut sync = [0u8; 16];
                sync[..8].copy_from_slice(&a.to_le_bytes());
                sync[8..].copy_from_slice(&b.to_le_bytes());
                let header = avro_file::header(&schema_json, codec, sync);
                let mut out = out;
                out.write_all(&header)
                    .map_err(|e| io_error(format!("writing {}", temp.display()), e))?;
                (
                    Body::Avro {
                        out,
                        blocks: AvroBlocks::new(codec, sync),
                    },
                    header.len() as u64,
                )
            }
            LakeFormat::Json { gzip: false } => (Body::Json { out }, 0),
            LakeFormat::Parquet(codec) => (
                Body::Parquet {
                    out: Box::new(ParquetFile::new(out, schema, codec).map_err(|e| {
                        SinkError::definite_with(
                            format!("starting {}", temp.display()),
                            "report this as a bug with the table's definition",
                            e,
                        )
                    })?),
                },
                0,
            ),
            LakeFormat::Json { gzip: true } => (
                Body::JsonGzip {
                    out: flate2::write::GzEncoder::new(out, flate2::Compression::fast()),
                },
                0,
            ),
        };
        Ok(OpenFile {
            dir,
            temp,
            last: position.clone(),
            first,
            records: 0,
            bytes,
            schema: Arc::clone(schema),
            body,
        })
    }

    /// Appends one record to its file.
    fn append(&mut self, record: &Record, commit_us: i64) -> Result<(), SinkError> {
        if record.kind == RecordKind::Heartbeat {
            return Ok(());
        }
        let Some(value) = &record.value else {
            return Ok(());
        };
        // Files are per (topic, hour); the hour as a number keeps the lookup free of
        // allocation (the directory name is made when a file opens).
        let key = (
            Arc::clone(&record.topic),
            commit_us.div_euclid(3_600_000_000),
        );
        let schema_changed = self.open.get(&key).is_some_and(|file| {
            !Arc::ptr_eq(&file.schema, &value.schema) && *file.schema != *value.schema
        });
        if schema_changed {
            self.roll_now()?;
        }
        if !self.open.contains_key(&key) {
            let partition = layout::partition_dir(commit_us);
            let file = self.open_file(&key.0, &partition, &record.position, &value.schema)?;
            self.open.insert(key.clone(), file);
        }
        let Some(file) = self.open.get_mut(&key) else {
            return Ok(());
        };
        let encode_error = |e| {
            SinkError::definite_with(
                format!("encoding a record for {}", record.topic),
                "report this as a bug with the table's definition",
                e,
            )
        };
        match &mut file.body {
            Body::Avro { out, blocks } => {
                blocks
                    .append(&value.schema, &value.datum)
                    .map_err(encode_error)?;
                if blocks.block_full() {
                    let n = blocks
                        .write_block(out)
                        .map_err(|e| io_error(format!("writing {}", file.temp.display()), e))?;
                    file.bytes += n as u64;
                }
            }
            Body::Parquet { out } => {
                let written = out.append(&value.datum).map_err(|e| {
                    SinkError::definite_with(
                        format!("writing a record to {}", file.temp.display()),
                        "report this as a bug with the table's definition",
                        e,
                    )
                })?;
                file.bytes = written as u64;
            }
            Body::Json { .. } | Body::JsonGzip { .. } => {
                self.line.clear();
                json::write_value(&mut self.line, &value.schema, &value.datum)
                    .map_err(encode_error)?;
                self.line.push('\n');
                let written = match &mut file.body {
                    Body::Json { out } => out.write_all(self.line.as_bytes()),
                    Body::JsonGzip { out } => out.write_all(self.line.as_bytes()),
                    Body::Avro { .. } | Body::Parquet { .. } => Ok(()),
                };
                written.map_err(|e| io_error(format!("writing {}", file.temp.display()), e))?;
                file.bytes += self.line.len() as u64;
            }
        }
        file.last.clone_from(&record.position);
        file.records += 1;
        self.metrics.records_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn roll_due(&self) -> bool {
        self.pending.len() >= self.config.max_pending_batches
            || self.open.values().any(|f| {
                f.records >= self.config.flush_size || f.bytes >= self.config.file_max_bytes
            })
    }

    /// Finishes every open file synchronously (a schema change mid-batch) without
    /// making any batch durable: the files hold part of the batch being written, so the
    /// batches waiting become durable at the next full roll, and until then the files
    /// lie past the committed offset (recovery removes them after a crash).
    fn roll_now(&mut self) -> Result<(), SinkError> {
        let files: Vec<OpenFile> = self.open.drain().map(|(_, f)| f).collect();
        let finished = finish_files(&self.prefix, self.config.format.extension(), files)?;
        if self.remote.is_some() {
            // Uploaded at the next full roll.
            self.staged.extend(finished);
        } else {
            self.count_committed(&finished);
        }
        Ok(())
    }

    /// Finishes every open file off the async threads; resolves waiting batches.
    async fn roll(&mut self) -> Result<(), SinkError> {
        if self.open.is_empty() && self.pending.is_empty() && self.staged.is_empty() {
            return Ok(());
        }
        let files: Vec<OpenFile> = self.open.drain().map(|(_, f)| f).collect();
        let prefix = self.prefix.clone();
        let extension = self.config.format.extension();
        let outcome = tokio::task::spawn_blocking(move || finish_files(&prefix, extension, files))
            .await
            .unwrap_or_else(|e| {
                Err(SinkError::transient(
                    "rolling lake files: the task failed",
                    e,
                ))
            });
        let outcome = match outcome {
            Ok(finished) => self.publish(finished).await,
            Err(e) => Err(e),
        };
        self.settle(outcome)
    }

    /// Makes finished files visible in the target: nothing more to do locally; for an
    /// object store, uploads the schema copies and the files, then removes the staged
    /// files.
    async fn publish(&mut self, finished: Vec<(PathBuf, u64)>) -> Result<(), SinkError> {
        let Some(remote) = &self.remote else {
            self.count_committed(&finished);
            return Ok(());
        };
        self.staged.extend(finished);
        for schema in &self.staged_schemas {
            remote.upload(&self.config.root, schema).await?;
        }
        self.staged_schemas.clear();
        for (file, _) in &self.staged {
            remote.upload(&self.config.root, file).await?;
        }
        let staged = std::mem::take(&mut self.staged);
        for (file, _) in &staged {
            tokio::fs::remove_file(file)
                .await
                .map_err(|e| io_error(format!("removing staged {}", file.display()), e))?;
        }
        self.count_committed(&staged);
        Ok(())
    }

    fn count_committed(&self, files: &[(PathBuf, u64)]) {
        self.metrics
            .files_committed
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        self.metrics.bytes_committed.fetch_add(
            files.iter().map(|(_, size)| size).sum::<u64>(),
            Ordering::Relaxed,
        );
    }

    fn settle(&mut self, outcome: Result<(), SinkError>) -> Result<(), SinkError> {
        match outcome {
            Ok(()) => {
                self.metrics.rolls.fetch_add(1, Ordering::Relaxed);
                for notifier in self.pending.drain(..) {
                    notifier.durable();
                }
                Ok(())
            }
            Err(e) => {
                for notifier in self.pending.drain(..) {
                    notifier.failed(SinkError::transient(
                        "the lake file holding this batch was not committed",
                        e.to_string(),
                    ));
                }
                Err(e)
            }
        }
    }
}

/// Finishes, fsyncs and renames `files`, then fsyncs their directories. Returns the
/// files made visible (locally) with their sizes.
fn finish_files(
    prefix: &str,
    extension: &str,
    files: Vec<OpenFile>,
) -> Result<Vec<(PathBuf, u64)>, SinkError> {
    let mut dirs = HashSet::new();
    let mut finished = Vec::with_capacity(files.len());
    for file in files {
        let temp_shown = file.temp.display().to_string();
        let (dir, temp, first, last, size) = file
            .finish()
            .map_err(|e| io_error(format!("finishing {temp_shown}"), e))?;
        let path = dir.join(layout::final_name(prefix, &first, &last, extension));
        std::fs::rename(&temp, &path).map_err(|e| io_error(format!("renaming {temp_shown}"), e))?;
        tracing::debug!(file = %path.display(), size, "lake file finished");
        dirs.insert(dir);
        finished.push((path, size));
    }
    for dir in dirs {
        sync_dir(&dir).map_err(|e| io_error(format!("syncing {}", dir.display()), e))?;
    }
    Ok(finished)
}

/// The object-store side of a lake: the store and the key prefix of `lake.path`.
struct RemoteLake {
    store: Arc<dyn ObjectStore>,
    base: ObjectPath,
}

/// Bytes per part of a multipart upload (and the size above which one is used).
const UPLOAD_PART_BYTES: usize = 8 << 20;

fn store_error(context: String, e: object_store::Error) -> SinkError {
    match &e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => SinkError::definite_with(
            context,
            "check the object-store credentials (lake.store.* or AWS_/GOOGLE_/AZURE_ variables)",
            e,
        ),
        _ => SinkError::transient(context, e),
    }
}

impl RemoteLake {
    fn connect(url: &str, options: &StoreOptions) -> Result<Self, SinkError> {
        let parsed = url::Url::parse(url).map_err(|e| {
            SinkError::definite_with(format!("reading lake.path {url}"), "give a valid URL", e)
        })?;
        let (store, base) =
            object_store::parse_url_opts(&parsed, options.0.iter()).map_err(|e| {
                SinkError::definite_with(
                    format!("opening the object store {url}"),
                    "check lake.path and the lake.store.* options",
                    e,
                )
            })?;
        Ok(Self {
            store: Arc::from(store),
            base,
        })
    }

    /// The object key of a staged file: `base` + its path below the staging root.
    fn key(&self, root: &Path, file: &Path) -> ObjectPath {
        let relative = file.strip_prefix(root).unwrap_or(file);
        ObjectPath::from_iter(
            self.base.parts().chain(
                relative
                    .components()
                    .map(|c| PathPart::from(c.as_os_str().to_string_lossy().into_owned())),
            ),
        )
    }

    /// Uploads one staged file (multipart above [`UPLOAD_PART_BYTES`]).
    async fn upload(&self, root: &Path, file: &Path) -> Result<(), SinkError> {
        let key = self.key(root, file);
        let context = || format!("uploading {} to {key}", file.display());
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|e| io_error(context(), e))?
            .len();
        if size <= UPLOAD_PART_BYTES as u64 {
            let bytes = tokio::fs::read(file)
                .await
                .map_err(|e| io_error(context(), e))?;
            self.store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(|e| store_error(context(), e))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| store_error(context(), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART_BYTES);
        let mut input = tokio::fs::File::open(file)
            .await
            .map_err(|e| io_error(context(), e))?;
        let mut chunk = vec![0u8; UPLOAD_PART_BYTES];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut input, &mut chunk)
                .await
                .map_err(|e| io_error(context(), e))?;
            if n == 0 {
                break;
            }
            writer
                .wait_for_capacity(2)
                .await
                .map_err(|e| store_error(context(), e))?;
            writer.write(&chunk[..n]);
        }
        writer
            .finish()
            .await
            .map_err(|e| store_error(context(), e))?;
        Ok(())
    }

    /// Deletes this connector's objects past `committed`; returns (removed, kept).
    async fn recover(
        &self,
        prefix: &str,
        committed: Option<&SourcePosition>,
    ) -> Result<(usize, usize), SinkError> {
        let committed = committed.map(SourcePosition::sort_token);
        let mut listing = self.store.list(Some(&self.base));
        let (mut removed, mut kept) = (0, 0);
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| store_error(format!("listing {}", self.base), e))?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let Some(LakeFile::Finished { last, .. }) = layout::classify(name, prefix) else {
                continue;
            };
            if committed
                .as_ref()
                .is_none_or(|c| last.as_str() > c.as_str())
            {
                tracing::info!(object = %meta.location, "lake: removing an object past the committed offset");
                self.store
                    .delete(&meta.location)
                    .await
                    .map_err(|e| store_error(format!("deleting {}", meta.location), e))?;
                removed += 1;
            } else {
                kept += 1;
            }
        }
        Ok((removed, kept))
    }
}

impl RecordSink for LakeSink {
    async fn put(&mut self, record: Record, commit_us: i64) -> Result<(), SinkError> {
        self.append(&record, commit_us)
    }

    async fn end_batch(&mut self) -> Result<DurableHandle, SinkError> {
        if self.open.is_empty() && self.pending.is_empty() {
            // Nothing waits in a file: durable as it is (the pipeline still commits it
            // only after every earlier batch).
            return Ok(DurableHandle::ready());
        }
        let (notifier, handle) = durability();
        self.pending.push(notifier);
        if self.roll_due() {
            self.roll().await?;
        }
        Ok(handle)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.roll().await
    }
}
