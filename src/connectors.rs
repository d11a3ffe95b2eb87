//! Connector lifecycle: validation of a submitted connector, one supervised task per
//! connector, target states kept in the state store, and Kafka Connect's status shape.
//!
//! A connector's task builds the source and the sink and runs the core pipeline with the
//! embedded state store as its offset store. Transient errors restart it from the durable
//! position after a capped exponential backoff (1 s → 60 s; status RESTARTING with the
//! error as `trace` meanwhile), which starts over at 1 s once an attempt stored a newer
//! position (so twenty separate faults an hour apart never wait a minute); definite errors leave it FAILED with the error chain in
//! `trace`. Pausing stops the task after a clean flush (offsets durable) and keeps the
//! target state; resuming starts it again from the stored position.
//!
//! No REST call waits for a connector's I/O: pause, resume, stop, restart, reconfigure
//! and delete record the target, ask the task to stop and return; the next task (or the
//! PAUSED/STOPPED state) follows once the old one has flushed, and status shows when.
//! A deleted connector's task stores no more offsets while it winds down. SIGTERM
//! waits at most `task.shutdown.graceful.timeout.ms` (10 s) for the final flushes.
//!
//! Debezium's Postgres, MySQL and MariaDB connector classes are wired into the worker's
//! sink: the lake (the default; `lake.*` worker settings, each overridable per connector)
//! or Kafka (`sink = "kafka"`, JSON or Avro per `converter`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outflow_core::{BoxedSink, OffsetStore, Source, SourceContext, SourceError};
use outflow_core::{Classify, ErrorClass, Pipeline, PipelineConfig, PipelineError};
use outflow_interchange::RecordStage;
use outflow_interchange::encoding::RecordEncoder;
use outflow_interchange::encoding::http_registry::{HttpSchemaRegistry, RegistryClientConfig};
use outflow_interchange::envelope::{ConnectorFlavor, EnvelopeConfig, EnvelopeFormatter};
use outflow_interchange::stage::{SinkPlan, StageParts};
use outflow_interchange::transforms::TransformChain;
use outflow_kafka::{KafkaSink, KafkaSinkConfig};
use outflow_lake::{LakeSink, LakeSinkConfig};
use outflow_mysql::{MySqlConfig, MySqlSource};
use outflow_postgres::config::PostgresConfig;
use outflow_postgres::source::PostgresSource;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::{ConverterKind, SinkKind, WorkerConfig};
use crate::metrics::{ConnectorMetrics, ConnectorSample, render};
use crate::state::{StateStore, TargetState};

/// Debezium's Postgres connector class.
pub const POSTGRES_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";
pub use outflow_mysql::config::{MARIADB_CLASS, MYSQL_CLASS};

/// The full class name of a connector class given by full name, simple class name, alias
/// (simple name without `Connector`, as Kafka Connect accepts) or outflow's short name.
pub fn canonical_class(class: &str) -> Option<&'static str> {
    match class {
        POSTGRES_CLASS | "PostgresConnector" | "Postgres" | "postgres" => Some(POSTGRES_CLASS),
        MYSQL_CLASS | "MySqlConnector" | "MySql" | "mysql" => Some(MYSQL_CLASS),
        MARIADB_CLASS | "MariaDbConnector" | "MariaDb" | "mariadb" => Some(MARIADB_CLASS),
        _ => None,
    }
}

/// The connector classes this worker runs.
pub const CLASSES: [&str; 3] = [POSTGRES_CLASS, MYSQL_CLASS, MARIADB_CLASS];

/// The envelope flavor of a (canonical) class.
fn flavor_of(class: &str) -> ConnectorFlavor {
    match canonical_class(class) {
        Some(MYSQL_CLASS) => ConnectorFlavor::MySql,
        Some(MARIADB_CLASS) => ConnectorFlavor::MariaDb,
        _ => ConnectorFlavor::Postgres,
    }
}

/// Why a request about connectors failed (mapped to HTTP by the REST layer).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A property is wrong (400, naming it).
    #[error("Connector configuration is invalid: {property}: {message}")]
    Invalid {
        /// The property.
        property: String,
        /// What is wrong.
        message: String,
    },
    /// The name is taken (409).
    #[error("Connector {0} already exists")]
    Exists(String),
    /// No such connector (404).
    #[error("Connector {0} not found")]
    NotFound(String),
    /// The state store failed (500).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

pub use outflow_core::config::is_secret;

/// The config with secret values replaced by `********`.
pub fn masked(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    config
        .iter()
        .map(|(k, v)| {
            let value = if is_secret(k) {
                "********".to_owned()
            } else {
                v.clone()
            };
            (k.clone(), value)
        })
        .collect()
}

/// The validated source of a connector.
#[derive(Debug, Clone)]
enum SourceSettings {
    Postgres(PostgresConfig),
    MySql(MySqlConfig),
}

/// The source a connector's pipeline reads.
#[derive(Debug)]
enum ConnectorSource {
    Postgres(Box<PostgresSource>),
    MySql(Box<MySqlSource>),
}

impl Source for ConnectorSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), SourceError> {
        match self {
            Self::Postgres(source) => source.run(ctx).await,
            Self::MySql(source) => source.run(ctx).await,
        }
    }
}

/// The validated sink of a connector: a built-in one, or a plan from the sink registry.
#[derive(Debug, Clone)]
enum SinkSettings {
    Kafka(KafkaSinkConfig),
    Lake(LakeSinkConfig),
    Plugin(Arc<dyn SinkPlan>),
}

/// The properties a registry sink validates: the worker's `<name>.*` keys, overridden by
/// the connector's own.
fn plugin_properties(
    worker: &WorkerConfig,
    config: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut props = worker.sink_properties.0.clone();
    props.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
    props
}

/// Everything a connector's task needs, checked before anything connects.
#[derive(Debug, Clone)]
struct Validated {
    source: SourceSettings,
    envelope: EnvelopeConfig,
    props: BTreeMap<String, String>,
    sink: SinkSettings,
    converter: ConverterKind,
    /// JsonConverter's `schemas.enable`.
    schemas_enable: bool,
    registry: Option<RegistryClientConfig>,
    /// `offset.flush.interval.ms`, `max.queue.size`, `max.batch.size`.
    pipeline: PipelineConfig,
}

/// The pipeline's tuning from Debezium's and Connect's properties: `max.queue.size`
/// (events waiting between source and sink), `max.batch.size` (events per sink write),
/// `offset.flush.interval.ms` (how often the Kafka sink commits; the lake rolls every
/// `flush.interval.ms`).
fn pipeline_of(config: &BTreeMap<String, String>) -> Result<PipelineConfig, RuntimeError> {
    let mut pipeline = PipelineConfig::default();
    let number = |key: &str| -> Result<Option<u64>, RuntimeError> {
        config
            .get(key)
            .map(|v| match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(invalid(key, format!("{v:?}: expected a positive number"))),
            })
            .transpose()
    };
    if let Some(ms) = number("offset.flush.interval.ms")? {
        pipeline.checkpoint_interval = Duration::from_millis(ms);
    }
    if let Some(events) = number("max.queue.size")? {
        pipeline.channel_events = usize::try_from(events).unwrap_or(usize::MAX);
    }
    if let Some(events) = number("max.batch.size")? {
        pipeline.max_batch_events = usize::try_from(events).unwrap_or(usize::MAX);
    }
    Ok(pipeline)
}

/// Kafka Connect's converter classes outflow implements.
const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";
const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";

/// The connector's converter: its own `value.converter` / `key.converter` (which must
/// name the same kind: outflow encodes keys and values with one converter) override the
/// worker's `converter`, as in Kafka Connect; plus `value.converter.schemas.enable`
/// (default true).
fn converter_of(
    worker: &WorkerConfig,
    config: &BTreeMap<String, String>,
) -> Result<(ConverterKind, bool), RuntimeError> {
    let kind_of = |property: &str| -> Result<Option<ConverterKind>, RuntimeError> {
        match config.get(property).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(AVRO_CONVERTER) => Ok(Some(ConverterKind::Avro)),
            Some(JSON_CONVERTER) => Ok(Some(ConverterKind::Json)),
            Some(other) => Err(invalid(
                property,
                format!(
                    "unknown converter class {other}; supported: {AVRO_CONVERTER}, {JSON_CONVERTER}"
                ),
            )),
        }
    };
    let value = kind_of("value.converter")?;
    let key = kind_of("key.converter")?;
    let kind = match (key, value) {
        (Some(k), Some(v)) if k != v => {
            return Err(invalid(
                "key.converter",
                "must be the same converter as value.converter (outflow encodes keys and values with one converter)",
            ));
        }
        (_, Some(v)) | (Some(v), None) => v,
        (None, None) => worker.converter,
    };
    let schemas_enable = match config
        .get("value.converter.schemas.enable")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => {
            return Err(invalid(
                "value.converter.schemas.enable",
                "expected true or false",
            ));
        }
    };
    Ok((kind, schemas_enable))
}

fn invalid(property: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Invalid {
        property: property.to_owned(),
        message: message.into(),
    }
}

fn from_property_error(e: outflow_core::config::PropertyError) -> RuntimeError {
    let message = e.to_string();
    invalid(&e.property, message)
}

/// The Kafka sink's settings: the worker's `kafka.*` (as `producer.*`), then the
/// connector's `producer.*` and `topic.creation.*`.
fn kafka_settings(
    worker: &WorkerConfig,
    name: &str,
    config: &BTreeMap<String, String>,
) -> Result<KafkaSinkConfig, RuntimeError> {
    let mut sink_props: BTreeMap<String, String> = worker
        .kafka
        .iter()
        .map(|(k, v)| {
            if k == "bootstrap.servers" {
                (k.clone(), v.clone())
            } else {
                (format!("producer.{k}"), v.clone())
            }
        })
        .collect();
    for (k, v) in config {
        if k.starts_with("producer.")
            || k.starts_with("topic.creation.")
            || k == "transaction.max.bytes"
        {
            sink_props.insert(k.clone(), v.clone());
        }
    }
    KafkaSinkConfig::from_properties(name, &sink_props).map_err(|e| {
        let property = if e.property == "bootstrap.servers" {
            "kafka.bootstrap.servers".to_owned()
        } else {
            e.property.clone()
        };
        invalid(&property, e.to_string())
    })
}

/// The lake sink's settings: the worker's `lake.path` / `lake.format` (and, for an
/// object store, staging in `<data.dir>/lake-staging`), then the connector's `lake.*` and
/// `flush.interval.ms`.
fn lake_settings(
    worker: &WorkerConfig,
    name: &str,
    config: &BTreeMap<String, String>,
) -> Result<LakeSinkConfig, RuntimeError> {
    let mut sink_props = BTreeMap::from([
        ("lake.path".to_owned(), worker.lake_path.clone()),
        ("lake.format".to_owned(), worker.lake_format.to_owned()),
        (
            "lake.staging.dir".to_owned(),
            worker.data_dir.join("lake-staging").display().to_string(),
        ),
    ]);
    for (k, v) in config {
        if k.starts_with("lake.") || k == "flush.interval.ms" {
            sink_props.insert(k.clone(), v.clone());
        }
    }
    LakeSinkConfig::from_properties(name, &sink_props).map_err(from_property_error)
}

/// Where a connector spools large in-progress transactions: under the data dir (the
/// operator chose that disk for outflow's state; `/tmp` is often a small tmpfs).
fn spool_dir(worker: &WorkerConfig, name: &str) -> std::path::PathBuf {
    worker.data_dir.join("spool").join(name)
}

/// Makes a connector's spool dir exist and empty. Spool files are unlinked when made, so
/// only a crash in that instant leaves one; a (re)start removes whatever is there.
fn clear_spool(dir: &std::path::Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The "accepted but not acted on" sentences of a connector's config.
fn not_acted_on_of(config: &BTreeMap<String, String>) -> Vec<String> {
    config
        .get("connector.class")
        .and_then(|c| canonical_class(c))
        .map(|class| crate::properties::not_acted_on(class, config))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, message)| message)
        .collect()
}

/// Checks a connector's config against the worker's; pure.
fn validate(
    worker: &WorkerConfig,
    name: &str,
    config: &BTreeMap<String, String>,
) -> Result<Validated, RuntimeError> {
    if name.trim().is_empty() || name.contains('/') {
        return Err(invalid("name", "a non-empty name without '/'"));
    }
    let class = match config.get("connector.class").map(String::as_str) {
        Some(class) => canonical_class(class).ok_or_else(|| {
            invalid(
                "connector.class",
                format!("unknown class {class}; available: {}", CLASSES.join(", ")),
            )
        })?,
        None => return Err(invalid("connector.class", "required")),
    };
    // Connectors see the canonical class (the MySQL config tells MariaDB by it).
    let mut config = config.clone();
    config.insert("connector.class".to_owned(), class.to_owned());
    let config = &config;
    let source = if class == POSTGRES_CLASS {
        let mut postgres = PostgresConfig::from_properties(config).map_err(from_property_error)?;
        postgres.spool_dir = spool_dir(worker, name);
        SourceSettings::Postgres(postgres)
    } else {
        SourceSettings::MySql(MySqlConfig::from_properties(config).map_err(from_property_error)?)
    };
    let envelope =
        EnvelopeConfig::from_properties(flavor_of(class), config).map_err(from_property_error)?;
    TransformChain::from_properties(config).map_err(from_property_error)?;
    let sink = match worker.sink {
        SinkKind::Kafka => SinkSettings::Kafka(kafka_settings(worker, name, config)?),
        SinkKind::Lake => SinkSettings::Lake(lake_settings(worker, name, config)?),
        SinkKind::Plugin(plugin) => SinkSettings::Plugin(
            crate::sinks::plugin(plugin)
                .ok_or_else(|| invalid("sink", format!("no sink {plugin} is registered")))?
                .validate(name, &plugin_properties(worker, config))
                .map_err(from_property_error)?,
        ),
    };
    let (converter, schemas_enable) = converter_of(worker, config)?;
    let registry = match (worker.sink, converter) {
        (SinkKind::Lake, _) | (_, ConverterKind::Json) => None,
        (SinkKind::Kafka | SinkKind::Plugin(_), ConverterKind::Avro) => {
            // The converter's own registry settings, else the worker's URL.
            let prefix = if config.contains_key("value.converter.schema.registry.url") {
                "value.converter."
            } else {
                ""
            };
            let mut props = config.clone();
            if let Some(url) = &worker.schema_registry_url
                && prefix.is_empty()
            {
                props
                    .entry("schema.registry.url".into())
                    .or_insert(url.clone());
                for (key, value) in &worker.schema_registry_tls {
                    props.entry(key.clone()).or_insert(value.clone());
                }
            }
            Some(
                RegistryClientConfig::from_properties(prefix, &props)
                    .map_err(from_property_error)?,
            )
        }
    };
    Ok(Validated {
        source,
        envelope,
        props: config.clone(),
        sink,
        converter,
        schemas_enable,
        registry,
        pipeline: pipeline_of(config)?,
    })
}

/// Checks a connector's config against the worker's, as creating it would; pure.
pub fn check(
    worker: &WorkerConfig,
    name: &str,
    config: &BTreeMap<String, String>,
) -> Result<(), RuntimeError> {
    validate(worker, name, config).map(|_| ())
}

/// Reads a connector file: Kafka Connect's `{"name": …, "config": {…}}`, or a flat
/// config object holding `name`. Values of any JSON type become strings, as Connect
/// keeps them.
pub fn parse_connector_json(text: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let config = value.get("config").unwrap_or(&value);
    let Some(object) = config.as_object() else {
        return Err("expected a JSON object with \"name\" and \"config\"".to_owned());
    };
    let config: BTreeMap<String, String> = object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| config.get("name").cloned())
        .ok_or_else(|| "the connector has no \"name\"".to_owned())?;
    Ok((name, config))
}

/// `PUT /connector-plugins/{class}/config/validate` and `outflow validate`: Kafka
/// Connect's `ConfigInfos` shape for `config` under this worker. Every given property is
/// listed (secret values masked); the first invalid property found carries the error
/// (validation stops there, so `error_count` is 0 or 1), and a required property that is
/// missing is added with its error.
pub fn validation_report(
    worker: &WorkerConfig,
    class: &str,
    config: &BTreeMap<String, String>,
) -> Value {
    let mut config = config.clone();
    config
        .entry("connector.class".to_owned())
        .or_insert_with(|| class.to_owned());
    let name = config
        .get("name")
        .cloned()
        .unwrap_or_else(|| "validate".to_owned());
    let error = match config.get("connector.class") {
        Some(given) if canonical_class(given) != canonical_class(class) => Some(invalid(
            "connector.class",
            format!("{given} does not match the plugin {class} of the request"),
        )),
        _ => validate(worker, &name, &config).err(),
    };
    let (bad_property, message) = match &error {
        Some(RuntimeError::Invalid { property, message }) => {
            (Some(property.clone()), Some(message.clone()))
        }
        Some(other) => (None, Some(other.to_string())),
        None => (None, None),
    };
    if let Some(property) = &bad_property {
        config.entry(property.clone()).or_default();
    }
    let shown = masked(&config);
    let configs: Vec<Value> = shown
        .iter()
        .map(|(key, value)| {
            let errors: Vec<&str> = match (&bad_property, &message) {
                (Some(p), Some(m)) if p == key => vec![m.as_str()],
                _ => Vec::new(),
            };
            json!({
                "definition": {
                    "name": key,
                    "type": if is_secret(key) { "PASSWORD" } else { "STRING" },
                    "required": key == "connector.class" || key == "topic.prefix",
                    "default_value": null,
                    "importance": "MEDIUM",
                    "documentation": "",
                    "group": "Common",
                    "width": "NONE",
                    "display_name": key,
                    "dependents": [],
                    "order": -1,
                },
                "value": {
                    "name": key,
                    "value": value,
                    "recommended_values": [],
                    "errors": errors,
                    "visible": true,
                },
            })
        })
        .collect();
    let error_count = usize::from(message.is_some());
    let warnings: Vec<Value> = canonical_class(class)
        .map(|class| crate::properties::not_acted_on(class, &config))
        .unwrap_or_default()
        .into_iter()
        .map(|(name, message)| json!({"name": name, "message": message}))
        .collect();
    json!({
        "name": class,
        "error_count": error_count,
        "groups": ["Common"],
        "configs": configs,
        "warnings": warnings,
    })
}

/// State of a connector's task, as status reports it.
#[derive(Debug, Clone)]
struct TaskStatus {
    state: &'static str,
    trace: Option<String>,
}

struct Managed {
    config: BTreeMap<String, String>,
    target: TargetState,
    status: Arc<Mutex<TaskStatus>>,
    metrics: Arc<ConnectorMetrics>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Set when the connector is deleted: its task, still winding down, stores no more
    /// offsets (the connector's are gone with it).
    retired: Arc<std::sync::atomic::AtomicBool>,
}

impl Managed {
    fn new(config: BTreeMap<String, String>, target: TargetState) -> Self {
        Self {
            config,
            target,
            status: Arc::new(Mutex::new(TaskStatus {
                state: "UNASSIGNED",
                trace: None,
            })),
            metrics: Arc::default(),
            stop: CancellationToken::new(),
            task: None,
            retired: Arc::default(),
        }
    }
}

/// A connector's view of the state store: its offsets, unless it was deleted while its
/// task was still stopping (then late commits are dropped, not resurrected).
#[derive(Debug, Clone)]
struct ConnectorOffsets {
    store: StateStore,
    retired: Arc<std::sync::atomic::AtomicBool>,
}

impl OffsetStore for ConnectorOffsets {
    async fn load(
        &self,
        connector: &str,
    ) -> Result<Option<outflow_core::SourcePosition>, outflow_core::OffsetStoreError> {
        self.store.load(connector).await
    }

    async fn commit(
        &self,
        connector: &str,
        position: &outflow_core::SourcePosition,
    ) -> Result<outflow_core::CommitOutcome, outflow_core::OffsetStoreError> {
        if self.retired.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(outflow_core::CommitOutcome::Stale);
        }
        self.store.commit(connector, position).await
    }

    async fn owns_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> Result<bool, outflow_core::OffsetStoreError> {
        self.store.owns_resource(connector, resource).await
    }

    async fn record_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> Result<bool, outflow_core::OffsetStoreError> {
        self.store.record_resource(connector, resource).await
    }
}

/// The worker's connectors.
pub struct ConnectorRuntime {
    store: StateStore,
    worker: WorkerConfig,
    worker_id: String,
    connectors: tokio::sync::Mutex<BTreeMap<String, Managed>>,
    /// Tasks of deleted connectors that are still stopping: a connector created again
    /// under the same name starts after its predecessor is gone (one reader per slot).
    retiring: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for ConnectorRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorRuntime")
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

fn set(status: &Mutex<TaskStatus>, state: &'static str, trace: Option<String>) {
    *status.lock().unwrap_or_else(PoisonError::into_inner) = TaskStatus { state, trace };
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str("\nCaused by: ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs one connector until stopped or failed.
async fn run_connector(
    name: String,
    validated: Validated,
    store: ConnectorOffsets,
    status: Arc<Mutex<TaskStatus>>,
    metrics: Arc<ConnectorMetrics>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        set(&status, "RUNNING", None);
        metrics.task_started();
        let started = tokio::time::Instant::now();
        let commits_before = metrics
            .pipeline
            .offset_commits
            .load(std::sync::atomic::Ordering::Relaxed);
        let attempt = crate::panics::CatchPanic::new(async {
            let encoder = match (&validated.converter, &validated.registry) {
                (ConverterKind::Avro, Some(registry)) => RecordEncoder::Avro(Box::new(
                    outflow_interchange::encoding::registry::AvroSerializer::new(
                        HttpSchemaRegistry::new(registry.clone()).map_err(|e| {
                            outflow_core::SinkError::definite_with(
                                "creating the schema registry client",
                                "check schema.registry.*",
                                e,
                            )
                        })?,
                        Default::default(),
                        Default::default(),
                    ),
                )),
                _ => RecordEncoder::Json {
                    schemas_enable: validated.schemas_enable,
                },
            };
            let transforms = TransformChain::from_properties(&validated.props).map_err(|e| {
                outflow_core::SinkError::definite("reading transforms", e.to_string())
            })?;
            let formatter = EnvelopeFormatter::new(validated.envelope.clone());
            let mut pipeline_config = validated.pipeline.clone();
            let sink = match &validated.sink {
                SinkSettings::Kafka(settings) => BoxedSink::new(RecordStage::new(
                    formatter,
                    transforms,
                    KafkaSink::start(settings.clone(), encoder).await?,
                )),
                SinkSettings::Lake(settings) => {
                    pipeline_config.checkpoint_interval = settings.flush_interval;
                    let committed = store.load(&name).await?;
                    BoxedSink::new(RecordStage::new(
                        formatter,
                        transforms,
                        LakeSink::start(settings.clone(), committed)
                            .await?
                            .with_metrics(Arc::clone(&metrics.lake)),
                    ))
                }
                SinkSettings::Plugin(plan) => {
                    plan.start(StageParts {
                        formatter,
                        transforms,
                        encoder,
                        committed: store.load(&name).await?,
                    })
                    .await?
                }
            };
            if let SourceSettings::Postgres(config) = &validated.source {
                let removed = clear_spool(&config.spool_dir).map_err(|e| {
                    outflow_core::SinkError::definite_with(
                        format!("preparing the spool dir {}", config.spool_dir.display()),
                        "make the data dir writable",
                        e,
                    )
                })?;
                if removed > 0 {
                    tracing::info!(connector = %name, removed, "removed spool files left by an earlier run");
                }
            }
            Pipeline::new(
                name.clone(),
                match &validated.source {
                    SourceSettings::Postgres(config) => ConnectorSource::Postgres(Box::new(
                        PostgresSource::new(config.clone())
                            .with_metrics(Arc::clone(&metrics.postgres)),
                    )),
                    SourceSettings::MySql(config) => ConnectorSource::MySql(Box::new(
                        MySqlSource::new(config.clone()).with_metrics(Arc::clone(&metrics.mysql)),
                    )),
                },
                sink,
                store.clone(),
                pipeline_config,
            )
            .with_metrics(Arc::clone(&metrics.pipeline))
            .run(stop.clone())
            .await
            .map(|_| ())
        });
        let result: Result<(), PipelineError> = match attempt.await {
            Ok(result) => result,
            Err(panicked) => {
                // The hook has logged where; the status says what to do.
                set(&status, "FAILED", Some(panicked.to_string()));
                return;
            }
        };
        match result {
            Ok(()) => {
                tracing::info!(connector = %name, "connector task ended");
                if !stop.is_cancelled() {
                    set(&status, "UNASSIGNED", None);
                }
                return;
            }
            Err(e) if e.class() == ErrorClass::Transient && !stop.is_cancelled() => {
                // An attempt that made progress (stored a newer position) or ran long
                // starts the backoff over: a fault now is a new fault, not the same
                // one repeating.
                let progressed = metrics
                    .pipeline
                    .offset_commits
                    .load(std::sync::atomic::Ordering::Relaxed)
                    > commits_before;
                if progressed || started.elapsed() > Duration::from_secs(300) {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(connector = %name, error = %chain(&e).replace("\nCaused by: ", ": "), retry_in = ?backoff, "connector failed; restarting from its durable position");
                set(&status, "RESTARTING", Some(chain(&e)));
                metrics
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Err(e) => {
                if stop.is_cancelled() {
                    return;
                }
                tracing::error!(connector = %name, error = %chain(&e).replace("\nCaused by: ", ": "), "connector failed");
                set(&status, "FAILED", Some(chain(&e)));
                return;
            }
        }
    }
}

impl ConnectorRuntime {
    /// Loads the stored connectors and starts those whose target is RUNNING.
    pub async fn start(
        store: StateStore,
        worker: WorkerConfig,
        worker_id: String,
    ) -> Result<Arc<Self>, RuntimeError> {
        let runtime = Arc::new(Self {
            store,
            worker,
            worker_id,
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
            retiring: Mutex::new(BTreeMap::new()),
        });
        let stored = runtime.store.connectors().await?;
        let mut connectors = runtime.connectors.lock().await;
        for connector in stored {
            let mut managed = Managed::new(connector.config, connector.target);
            runtime.launch(&connector.name, &mut managed, None);
            connectors.insert(connector.name, managed);
        }
        drop(connectors);
        Ok(runtime)
    }

    /// Starts the task if the target is RUNNING; else records PAUSED/STOPPED. With
    /// `previous` (the task being stopped), the new task starts, or the state is
    /// recorded, once that one has finished its final flush: callers never wait for
    /// a connector's I/O (a paused broker holds a flush for as long as it is paused).
    fn launch(
        &self,
        name: &str,
        managed: &mut Managed,
        previous: Option<tokio::task::JoinHandle<()>>,
    ) {
        let idle = match managed.target {
            TargetState::Paused => Some("PAUSED"),
            TargetState::Stopped => Some("STOPPED"),
            TargetState::Running => None,
        };
        if let Some(state) = idle {
            match previous {
                None => set(&managed.status, state, None),
                Some(previous) => {
                    let status = Arc::clone(&managed.status);
                    managed.task = Some(tokio::spawn(async move {
                        let _ = previous.await;
                        set(&status, state, None);
                    }));
                }
            }
            return;
        }
        crate::panics::register_secrets(
            managed
                .config
                .iter()
                .filter(|(key, _)| is_secret(key))
                .map(|(_, value)| value),
        );
        match validate(&self.worker, name, &managed.config) {
            Ok(validated) => {
                managed.stop = CancellationToken::new();
                let run = run_connector(
                    name.to_owned(),
                    validated,
                    ConnectorOffsets {
                        store: self.store.clone(),
                        retired: Arc::clone(&managed.retired),
                    },
                    Arc::clone(&managed.status),
                    Arc::clone(&managed.metrics),
                    managed.stop.clone(),
                );
                let stop = managed.stop.clone();
                managed.task = Some(tokio::spawn(async move {
                    if let Some(previous) = previous {
                        let _ = previous.await;
                    }
                    if !stop.is_cancelled() {
                        run.await;
                    }
                }));
                tracing::info!(connector = %name, "connector started");
                for warning in not_acted_on_of(&managed.config) {
                    tracing::warn!(connector = %name, "{warning}");
                }
            }
            Err(e) => {
                if let Some(previous) = previous {
                    managed.task = Some(previous);
                }
                set(&managed.status, "FAILED", Some(e.to_string()));
            }
        }
    }

    /// Asks a connector's task to stop (it flushes and commits what is durable, then
    /// ends) and returns it, without waiting.
    fn halt(managed: &mut Managed) -> Option<tokio::task::JoinHandle<()>> {
        managed.stop.cancel();
        managed.task.take()
    }

    /// Validates, stores and starts a new connector.
    pub async fn create(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
    ) -> Result<Value, RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        if connectors.contains_key(name) {
            return Err(RuntimeError::Exists(name.to_owned()));
        }
        validate(&self.worker, name, &config)?;
        self.store
            .put_connector(name, &config, TargetState::Running)
            .await?;
        let mut managed = Managed::new(config, TargetState::Running);
        let previous = self
            .retiring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        self.launch(name, &mut managed, previous);
        let info = Self::info_of(name, &managed);
        connectors.insert(name.to_owned(), managed);
        Ok(info)
    }

    fn info_of(name: &str, managed: &Managed) -> Value {
        json!({
            "name": name,
            "config": masked(&managed.config),
            "tasks": [{"connector": name, "task": 0}],
            "type": "source",
        })
    }

    /// `PUT /connectors/{name}/config`: creates (true) or reconfigures (false) a
    /// connector; a running one restarts with the new config from its durable position.
    pub async fn put_config(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
    ) -> Result<(bool, Value), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let Some(managed) = connectors.get_mut(name) else {
            drop(connectors);
            return self.create(name, config).await.map(|info| (true, info));
        };
        validate(&self.worker, name, &config)?;
        self.store
            .put_connector(name, &config, managed.target)
            .await?;
        let previous = Self::halt(managed);
        managed.config = config;
        self.launch(name, managed, previous);
        Ok((false, Self::info_of(name, managed)))
    }

    /// `GET /connectors/{name}/tasks`: the one task, with its config (masked).
    pub async fn tasks(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        Ok(json!([{
            "id": {"connector": name, "task": 0},
            "config": masked(&managed.config),
        }]))
    }

    /// Connector names.
    pub async fn names(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// `GET /connectors/{name}`.
    pub async fn info(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        Ok(Self::info_of(name, managed))
    }

    /// `GET /connectors/{name}/config` (secrets masked).
    pub async fn config(&self, name: &str) -> Result<BTreeMap<String, String>, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        Ok(masked(&managed.config))
    }

    /// `GET /connectors/{name}/status`.
    pub async fn status(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        let status = managed
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let connector_state = match status.state {
            "FAILED" | "PAUSED" | "STOPPED" => status.state,
            _ => "RUNNING",
        };
        let mut task = json!({"id": 0, "state": status.state, "worker_id": self.worker_id});
        if let Some(trace) = status.trace {
            task["trace"] = Value::String(trace);
        }
        let mut body = json!({
            "name": name,
            "connector": {"state": connector_state, "worker_id": self.worker_id},
            "tasks": if managed.target == TargetState::Stopped { json!([]) } else { json!([task]) },
            "type": "source",
        });
        let warnings = not_acted_on_of(&managed.config);
        if !warnings.is_empty() {
            body["warnings"] = json!(warnings);
        }
        if status.state == "RUNNING"
            && let Some(snapshot) = managed.metrics.snapshot_status()
        {
            body["snapshot"] = snapshot;
        }
        Ok(body)
    }

    /// The worker's config (for validation requests).
    pub fn worker(&self) -> &WorkerConfig {
        &self.worker
    }

    /// `GET /metrics`: the Prometheus text of every connector.
    pub async fn metrics_text(&self) -> String {
        let connectors = self.connectors.lock().await;
        let states: Vec<(&String, &'static str, &Arc<ConnectorMetrics>)> = connectors
            .iter()
            .map(|(name, m)| {
                let state = m
                    .status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .state;
                (name, state, &m.metrics)
            })
            .collect();
        let samples: Vec<ConnectorSample<'_>> = states
            .iter()
            .map(|(name, state, metrics)| ConnectorSample {
                name,
                state,
                metrics,
            })
            .collect();
        render(&samples)
    }

    /// `PUT /connectors/{name}/pause|resume|stop`.
    pub async fn set_target(&self, name: &str, target: TargetState) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let managed = connectors
            .get_mut(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        self.store.set_target(name, target).await?;
        managed.target = target;
        let previous = Self::halt(managed);
        self.launch(name, managed, previous);
        Ok(())
    }

    /// `POST /connectors/{name}/restart`.
    pub async fn restart(&self, name: &str) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let managed = connectors
            .get_mut(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        let previous = Self::halt(managed);
        self.launch(name, managed, previous);
        Ok(())
    }

    /// `DELETE /connectors/{name}`: stops it and removes its config and offsets.
    pub async fn delete(&self, name: &str) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let mut managed = connectors
            .remove(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        managed
            .retired
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(task) = Self::halt(&mut managed) {
            let mut retiring = self.retiring.lock().unwrap_or_else(PoisonError::into_inner);
            retiring.retain(|_, t| !t.is_finished());
            retiring.insert(name.to_owned(), task);
        }
        self.store.delete_connector(name).await?;
        tracing::info!(connector = %name, "connector deleted");
        Ok(())
    }

    /// `GET /connectors/{name}/offsets`: Kafka Connect's shape, Debezium's offset fields.
    pub async fn offsets(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        let server = managed
            .config
            .get("topic.prefix")
            .cloned()
            .unwrap_or_default();
        drop(connectors);
        let position = outflow_core::OffsetStore::load(&self.store, name)
            .await
            .map_err(|e| invalid("offsets", e.to_string()))?;
        let offsets: Vec<Value> = position
            .iter()
            .map(|p| {
                json!({
                    "partition": {"server": server},
                    "offset": serde_json::from_str::<Value>(&outflow_kafka::offsets::offset_value(p))
                        .unwrap_or(Value::Null),
                })
            })
            .collect();
        Ok(json!({ "offsets": offsets }))
    }

    /// `DELETE /connectors/{name}/offsets` (KIP-875): only while STOPPED.
    pub async fn reset_offsets(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        if managed.target != TargetState::Stopped {
            return Err(invalid(
                "state",
                format!(
                    "Connectors must be in the STOPPED state before their offsets can be modified; stop {name} first (PUT /connectors/{name}/stop)"
                ),
            ));
        }
        self.store.reset_offsets(name).await?;
        Ok(json!({"message": "The offsets for this connector have been reset successfully"}))
    }

    /// `PATCH /connectors/{name}/offsets` (KIP-875 alter): only while STOPPED. `body` is
    /// `{"offsets": [{"partition": {"server": <topic.prefix>}, "offset": <Debezium offset
    /// or null>}]}`; a null offset resets.
    pub async fn alter_offsets(&self, name: &str, body: &Value) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        if managed.target != TargetState::Stopped {
            return Err(invalid(
                "state",
                format!(
                    "Connectors must be in the STOPPED state before their offsets can be modified; stop {name} first (PUT /connectors/{name}/stop)"
                ),
            ));
        }
        let server = managed
            .config
            .get("topic.prefix")
            .cloned()
            .unwrap_or_default();
        let Some(entries) = body.get("offsets").and_then(Value::as_array) else {
            return Err(invalid(
                "offsets",
                "expected {\"offsets\": [{\"partition\", \"offset\"}]}",
            ));
        };
        let [entry] = entries.as_slice() else {
            return Err(invalid(
                "offsets",
                format!(
                    "a Debezium connector has one source partition ({{\"server\": \"{server}\"}}); give exactly one entry"
                ),
            ));
        };
        if entry["partition"]["server"].as_str() != Some(server.as_str()) {
            return Err(invalid(
                "offsets",
                format!(
                    "the partition must be {{\"server\": \"{server}\"}} (the connector's topic.prefix)"
                ),
            ));
        }
        let offset = &entry["offset"];
        if offset.is_null() {
            self.store.reset_offsets(name).await?;
        } else {
            let position = outflow_kafka::offsets::parse_offset_value(&offset.to_string())
                .ok_or_else(|| {
                    invalid(
                        "offsets",
                        "the offset is not a Debezium Postgres offset (lsn, lsn_commit, txId, …)",
                    )
                })?;
            self.store.set_offset(name, &position).await?;
        }
        drop(connectors);
        tracing::info!(connector = %name, "offsets altered");
        Ok(json!({"message": "The offsets for this connector have been altered successfully"}))
    }

    /// `GET /connectors/{name}/topics`: the topics of the tables the connector has
    /// delivered events of since this worker started, named as the envelope names them.
    pub async fn topics(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = connectors
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        let class = managed
            .config
            .get("connector.class")
            .map_or(POSTGRES_CLASS, String::as_str);
        let envelope = EnvelopeConfig::from_properties(flavor_of(class), &managed.config)
            .map_err(from_property_error)?;
        let formatter = EnvelopeFormatter::new(envelope);
        let topics: std::collections::BTreeSet<String> = managed
            .metrics
            .pipeline
            .table_ops()
            .keys()
            .filter_map(|table| table.split_once('.'))
            .map(|(schema, table)| formatter.topic_for(&outflow_core::TableId::new(schema, table)))
            .collect();
        Ok(json!({ name: {"topics": topics} }))
    }

    /// Stops every task after its final flush (SIGTERM), waiting at most
    /// `task.shutdown.graceful.timeout.ms` for them.
    pub async fn shutdown(&self) {
        let mut tasks: Vec<tokio::task::JoinHandle<()>> = {
            let mut connectors = self.connectors.lock().await;
            connectors.values_mut().filter_map(Self::halt).collect()
        };
        tasks.extend(
            std::mem::take(&mut *self.retiring.lock().unwrap_or_else(PoisonError::into_inner))
                .into_values(),
        );
        let timeout = self.worker.task_shutdown_timeout;
        let all = async {
            for task in &mut tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            let waiting = tasks.iter().filter(|t| !t.is_finished()).count();
            tracing::warn!(
                connectors = waiting,
                timeout_ms = timeout.as_millis() as u64,
                "connectors did not stop within task.shutdown.graceful.timeout.ms; exiting without their last flush (they resume from their last durable offset)"
            );
            for task in &tasks {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{clear_spool, spool_dir, validate};

    #[test]
    fn postgres_spools_under_the_data_dir_and_a_start_clears_what_a_crash_left() {
        let data = tempfile::tempdir().unwrap();
        let worker = crate::config::RawWorkerConfig::load(
            None,
            [(
                "OUTFLOW_DATA_DIR".to_owned(),
                data.path().display().to_string(),
            )],
        )
        .unwrap()
        .validate()
        .unwrap();
        let config = std::collections::BTreeMap::from([
            ("connector.class".to_owned(), "postgres".to_owned()),
            ("database.hostname".to_owned(), "localhost".to_owned()),
            ("database.user".to_owned(), "u".to_owned()),
            ("database.dbname".to_owned(), "d".to_owned()),
            ("topic.prefix".to_owned(), "p".to_owned()),
        ]);
        let validated = validate(&worker, "inventory", &config).unwrap();
        let super::SourceSettings::Postgres(postgres) = &validated.source else {
            panic!("a Postgres source");
        };
        assert_eq!(postgres.spool_dir, data.path().join("spool/inventory"));
        assert_eq!(postgres.spool_dir, spool_dir(&worker, "inventory"));
        std::fs::create_dir_all(&postgres.spool_dir).unwrap();
        std::fs::write(postgres.spool_dir.join(".tmpA1b2C3"), b"left by a crash").unwrap();
        assert_eq!(clear_spool(&postgres.spool_dir).unwrap(), 1);
        assert_eq!(std::fs::read_dir(&postgres.spool_dir).unwrap().count(), 0);
        assert_eq!(clear_spool(&data.path().join("spool/new")).unwrap(), 0);
    }
}
