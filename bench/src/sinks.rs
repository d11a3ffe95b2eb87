//! The sinks a scenario drains into, built as the daemon builds them: null, lake (Avro
//! container files, snappy) and Kafka (Avro through the schema registry, or Connect's
//! JSON with schemas; one producer transaction per checkpoint: exactly once). The peer,
//! Debezium on Kafka Connect writing JSON to the same broker, is chosen the same way
//! (`--sinks …,debezium`) and run by [`crate::debezium`].

use std::fmt;

use outflow_core::{EventBatch, NullSink, PositionFamily, Sink, SinkError, SourceBlock};
use outflow_interchange::RecordStage;
use outflow_interchange::encoding::RecordEncoder;
use outflow_interchange::encoding::http_registry::{HttpSchemaRegistry, RegistryClientConfig};
use outflow_interchange::encoding::registry::{AvroSerializer, SubjectNameStrategy};
use outflow_interchange::envelope::{EnvelopeConfig, EnvelopeFormatter};
use outflow_interchange::transforms::TransformChain;
use outflow_kafka::{KafkaSink, KafkaSinkConfig};
use outflow_lake::{LakeSink, LakeSinkConfig};

use crate::measure::{BoxError, props};

/// Which sink a run drains into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkKind {
    /// Drops every batch, durable at once: the source and pipeline alone.
    Null,
    /// Avro container files (snappy) in a temporary directory.
    Lake,
    /// Kafka (the testkit broker), Avro through the testkit registry, exactly once.
    Kafka,
    /// Kafka, Connect's JsonConverter with schemas (the converter Debezium runs with
    /// here), exactly once.
    KafkaJson,
    /// Not outflow: Debezium 3.6 on the lab's Kafka Connect worker, JSON with schemas,
    /// into the same broker (the peer, [`crate::debezium`]).
    Debezium,
}

impl SinkKind {
    /// Every sink, in the order runs take them.
    pub(crate) const ALL: [SinkKind; 3] = [SinkKind::Null, SinkKind::Lake, SinkKind::Kafka];

    /// Its name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Lake => "lake",
            Self::Kafka => "kafka",
            Self::KafkaJson => "kafka-json",
            Self::Debezium => "debezium",
        }
    }

    /// Whether outflow writes to Kafka in this run (it needs the broker's address).
    pub(crate) fn uses_kafka(self) -> bool {
        matches!(self, Self::Kafka | Self::KafkaJson)
    }

    /// Parses `null`, `lake`, `kafka`, `kafka-json` or `debezium`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "null" => Some(Self::Null),
            "lake" => Some(Self::Lake),
            "kafka" => Some(Self::Kafka),
            "kafka-json" => Some(Self::KafkaJson),
            "debezium" => Some(Self::Debezium),
            _ => None,
        }
    }
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "outflow → null",
            Self::Lake => "outflow → lake (Avro, snappy)",
            Self::Kafka => "outflow → Kafka (Avro, exactly-once)",
            Self::KafkaJson => "outflow → Kafka (JSON, exactly-once)",
            Self::Debezium => "Debezium 3.6 on Kafka Connect → Kafka (JSON)",
        })
    }
}

/// A built sink of any kind.
pub(crate) enum AnySink {
    /// See [`SinkKind::Null`].
    Null(NullSink),
    /// See [`SinkKind::Lake`]; the directory lives as long as the sink.
    Lake {
        /// The sink.
        sink: Box<RecordStage<LakeSink>>,
        /// Its directory, removed when the run ends.
        _root: tempfile::TempDir,
    },
    /// See [`SinkKind::Kafka`].
    Kafka(Box<RecordStage<KafkaSink>>),
}

impl Sink for AnySink {
    async fn write(&mut self, batch: EventBatch) -> Result<outflow_core::DurableHandle, SinkError> {
        match self {
            Self::Null(s) => s.write(batch).await,
            Self::Lake { sink: s, .. } => s.write(batch).await,
            Self::Kafka(s) => s.write(batch).await,
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Self::Null(s) => s.flush().await,
            Self::Lake { sink: s, .. } => s.flush().await,
            Self::Kafka(s) => s.flush().await,
        }
    }
}

/// Addresses of the Kafka broker and schema registry a run uses.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct KafkaLab {
    /// `bootstrap.servers`.
    pub servers: String,
    /// `schema.registry.url`.
    pub registry: String,
}

impl KafkaLab {
    /// The testkit's broker and registry (started on first use).
    pub(crate) fn from_testkit() -> Self {
        Self {
            servers: outflow_testkit::broker().bootstrap_servers(),
            registry: outflow_testkit::registry().url(),
        }
    }
}

/// Builds a sink of `kind` for connector `name` of a class with `source` blocks and
/// `positions`, topics under `prefix`; the Kafka sink needs `kafka`.
pub(crate) async fn build(
    kind: SinkKind,
    (source, positions): (&'static dyn SourceBlock, &'static dyn PositionFamily),
    name: &str,
    prefix: &str,
    dbname: &str,
    kafka: Option<&KafkaLab>,
) -> Result<AnySink, BoxError> {
    let formatter = || -> Result<EnvelopeFormatter, BoxError> {
        Ok(EnvelopeFormatter::new(EnvelopeConfig::from_properties(
            source,
            &props(&[("topic.prefix", prefix), ("database.dbname", dbname)]),
        )?))
    };
    Ok(match kind {
        SinkKind::Null => AnySink::Null(NullSink::default()),
        SinkKind::Lake => {
            let root = tempfile::tempdir()?;
            let path = root.path().to_string_lossy().into_owned();
            let sink = LakeSink::start(
                LakeSinkConfig::from_properties(name, &props(&[("lake.path", path.as_str())]))?,
                None,
            )
            .await?;
            AnySink::Lake {
                sink: Box::new(RecordStage::new(
                    formatter()?,
                    TransformChain::default(),
                    sink,
                )),
                _root: root,
            }
        }
        SinkKind::Debezium => return Err("Debezium is not an outflow sink".into()),
        SinkKind::Kafka | SinkKind::KafkaJson => {
            let lab = kafka.ok_or("the Kafka sink needs a broker and a registry")?;
            let (servers, registry) = (&lab.servers, &lab.registry);
            let encoder = if kind == SinkKind::Kafka {
                RecordEncoder::Avro(Box::new(AvroSerializer::new(
                    HttpSchemaRegistry::new(RegistryClientConfig::from_properties(
                        "",
                        &props(&[("schema.registry.url", registry.as_str())]),
                    )?)?,
                    SubjectNameStrategy::TopicName,
                    SubjectNameStrategy::TopicName,
                )))
            } else {
                RecordEncoder::Json {
                    schemas_enable: true,
                }
            };
            // `BENCH_KAFKA_PROPS="k=v,k=v"`: extra sink properties (tuning experiments).
            let mut sink_props = props(&[("bootstrap.servers", servers.as_str())]);
            for pair in std::env::var("BENCH_KAFKA_PROPS")
                .unwrap_or_default()
                .split(',')
            {
                if let Some((key, value)) = pair.split_once('=') {
                    sink_props.insert(key.trim().to_owned(), value.trim().to_owned());
                }
            }
            let sink = KafkaSink::start(
                KafkaSinkConfig::from_properties(name, &sink_props)?,
                encoder,
                positions,
            )
            .await?;
            AnySink::Kafka(Box::new(RecordStage::new(
                formatter()?,
                TransformChain::default(),
                sink,
            )))
        }
    })
}
