//! A submitted connector config checked against the worker's: everything a task
//! needs, or a [`RuntimeError::Invalid`] naming the property. Pure: no I/O, so the
//! validate endpoint, `outflow validate` and every create or reconfigure share it.
//!
//! The source's part comes from its plugin in the source registry, the sink's from the
//! worker's sink (the lake, Kafka, or a registry plugin); what is left here is what Kafka
//! Connect itself reads: converters, the registry client, the pipeline's tuning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outflow_core::PipelineConfig;
use outflow_core::connector::{SourceEnv, SourcePlan, SourcePlugin};
use outflow_interchange::encoding::http_registry::RegistryClientConfig;
use outflow_interchange::envelope::EnvelopeConfig;
use outflow_interchange::stage::{SinkPlan, SinkPlugin};
use outflow_interchange::transforms::TransformChain;

use super::RuntimeError;
use crate::config::{ConverterKind, SinkKind, WorkerConfig};

/// The validated sink of a connector: its plugin (for its metrics) and its plan.
#[derive(Debug, Clone)]
pub(super) struct SinkSettings {
    pub(super) plugin: &'static dyn SinkPlugin,
    pub(super) plan: Arc<dyn SinkPlan>,
}

/// The worker's sink and the properties it gives every connector's sink as defaults: the
/// built-in lake's and Kafka's typed worker settings under their names (`lake.path`,
/// `lake.format`, the staging dir; `kafka.*`), a registry sink's `<name>.*` keys.
fn worker_sink(
    worker: &WorkerConfig,
) -> Result<(&'static dyn SinkPlugin, BTreeMap<String, String>), RuntimeError> {
    Ok(match worker.sink {
        SinkKind::Lake => (
            &outflow_lake::LakePlugin,
            BTreeMap::from([
                ("lake.path".to_owned(), worker.lake_path.clone()),
                ("lake.format".to_owned(), worker.lake_format.to_owned()),
                (
                    "lake.staging.dir".to_owned(),
                    worker.data_dir.join("lake-staging").display().to_string(),
                ),
            ]),
        ),
        SinkKind::Kafka => (
            &outflow_kafka::KafkaPlugin,
            worker
                .kafka
                .iter()
                .map(|(k, v)| (format!("kafka.{k}"), v.clone()))
                .collect(),
        ),
        SinkKind::Plugin(name) => (
            crate::sinks::plugin(name)
                .ok_or_else(|| invalid("sink", format!("no sink {name} is registered")))?,
            worker.sink_properties.0.clone(),
        ),
    })
}

/// Everything a connector's task needs, checked before anything connects.
#[derive(Debug, Clone)]
pub(super) struct Validated {
    /// The source's plugin (for its metrics) and its validated plan.
    pub(super) plugin: &'static dyn SourcePlugin,
    pub(super) source: Arc<dyn SourcePlan>,
    /// The class's position family: how the sink reads the positions it stored.
    pub(super) positions: &'static dyn outflow_core::PositionFamily,
    /// What the worker gives the source: its spool dir.
    pub(super) source_env: SourceEnv,
    pub(super) envelope: EnvelopeConfig,
    pub(super) props: BTreeMap<String, String>,
    pub(super) sink: SinkSettings,
    pub(super) converter: ConverterKind,
    /// JsonConverter's `schemas.enable`.
    pub(super) schemas_enable: bool,
    pub(super) registry: Option<RegistryClientConfig>,
    /// `offset.flush.interval.ms`, `max.queue.size`, `max.batch.size`.
    pub(super) pipeline: PipelineConfig,
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

pub(super) fn invalid(property: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Invalid {
        property: property.to_owned(),
        message: message.into(),
    }
}

pub(super) fn from_property_error(e: outflow_core::config::PropertyError) -> RuntimeError {
    let message = e.to_string();
    invalid(&e.property, message)
}

/// Where a connector spools large in-progress transactions: under the data dir (the
/// operator chose that disk for outflow's state; `/tmp` is often a small tmpfs).
pub(super) fn spool_dir(worker: &WorkerConfig, name: &str) -> std::path::PathBuf {
    worker.data_dir.join("spool").join(name)
}

/// The "accepted but not acted on" sentences of a connector's config.
pub(super) fn not_acted_on_of(config: &BTreeMap<String, String>) -> Vec<String> {
    config
        .get("connector.class")
        .and_then(|c| crate::sources::canonical_class(c))
        .map(|class| crate::properties::not_acted_on(class, config))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, message)| message)
        .collect()
}

/// Checks a connector's config against the worker's; pure.
pub(super) fn validate(
    worker: &WorkerConfig,
    name: &str,
    config: &BTreeMap<String, String>,
) -> Result<Validated, RuntimeError> {
    if name.trim().is_empty() || name.contains('/') {
        return Err(invalid("name", "a non-empty name without '/'"));
    }
    let (plugin, class) = match config.get("connector.class").map(String::as_str) {
        Some(given) => crate::sources::class(given).ok_or_else(|| {
            invalid(
                "connector.class",
                format!(
                    "unknown class {given}; available: {}",
                    crate::sources::class_names().collect::<Vec<_>>().join(", ")
                ),
            )
        })?,
        None => return Err(invalid("connector.class", "required")),
    };
    // Connectors see the canonical class.
    let mut config = config.clone();
    config.insert("connector.class".to_owned(), class.name.to_owned());
    let config = &config;
    let source_env = SourceEnv {
        connector: name.to_owned(),
        spool_dir: spool_dir(worker, name),
    };
    let source = plugin
        .validate(class, config, &source_env)
        .map_err(from_property_error)?;
    let envelope =
        EnvelopeConfig::from_properties(class.source_block, config).map_err(from_property_error)?;
    TransformChain::from_properties(config).map_err(from_property_error)?;
    // The sink's properties: the worker's defaults, overridden by the connector's own.
    let (sink_plugin, mut sink_props) = worker_sink(worker)?;
    sink_props.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
    let plan = sink_plugin
        .validate(name, &sink_props)
        .map_err(from_property_error)?;
    let (converter, schemas_enable) = converter_of(worker, config)?;
    let registry = match converter {
        _ if !plan.encodes_records() => None,
        ConverterKind::Json => None,
        ConverterKind::Avro => {
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
        plugin,
        source,
        positions: class.positions,
        source_env,
        envelope,
        props: config.clone(),
        sink: SinkSettings {
            plugin: sink_plugin,
            plan,
        },
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

#[cfg(test)]
mod tests {
    use super::super::task::clear_spool;
    use super::{spool_dir, validate};

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
        let spool = &validated.source_env.spool_dir;
        assert_eq!(*spool, data.path().join("spool/inventory"));
        assert_eq!(*spool, spool_dir(&worker, "inventory"));
        std::fs::create_dir_all(spool).unwrap();
        std::fs::write(spool.join(".tmpA1b2C3"), b"left by a crash").unwrap();
        assert_eq!(clear_spool(spool).unwrap(), 1);
        assert_eq!(std::fs::read_dir(spool).unwrap().count(), 0);
        assert_eq!(clear_spool(&data.path().join("spool/new")).unwrap(), 0);
    }
}
