//! Outflow runs in a process of their own, so each run's CPU time and peak RSS are those
//! of a fresh process doing only that drain, as the daemon would (measured in-process,
//! memory an earlier run left in the allocator counted against the next one).
//!
//! The parent writes a [`DrainSpec`] as JSON to `outflow-bench __drain`'s argument; the
//! child builds the source and sink from it, runs [`crate::measure::drain`] and prints
//! the figures as one JSON line. Servers stay the parent's: the child gets their
//! addresses, never starts its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outflow_core::{MemoryOffsetStore, OffsetStore, PositionFamily, SourceBlock, SourcePosition};
use outflow_mysql::position::BINLOG_POSITIONS;
use outflow_mysql::source_block::MARIADB_SOURCE_BLOCK;
use outflow_mysql::{MySqlConfig, MySqlSource};
use outflow_postgres::config::PostgresConfig;
use outflow_postgres::position::POSTGRES_POSITIONS;
use outflow_postgres::source::PostgresSource;
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;
use serde::{Deserialize, Serialize};

use crate::measure::{BoxError, DrainPlan, Drained, drain};
use crate::sinks::{self, KafkaLab, SinkKind};

/// Which source a child runs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum SourceKind {
    /// The Postgres connector.
    Postgres,
    /// The MariaDB connector.
    MariaDb,
}

/// Everything a child needs for one drain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DrainSpec {
    /// Connector name (offsets, Kafka transactional id, topic prefix).
    pub name: String,
    /// The source.
    pub source: SourceKind,
    /// Its connector properties.
    pub props: BTreeMap<String, String>,
    /// Where to start (a stored offset), if anywhere.
    pub start: Option<String>,
    /// The sink: `null`, `lake` or `kafka`.
    pub sink: String,
    /// Database name for the envelope's `source.db`.
    pub dbname: String,
    /// Kafka broker and registry, for the Kafka sink.
    pub kafka: Option<KafkaLab>,
    /// Row events to wait for.
    pub rows: u64,
    /// Checkpoint interval, ms.
    pub checkpoint_ms: u64,
    /// The server's process name.
    pub server: String,
}

impl DrainSpec {
    /// A drain of `rows` row events from `source` (with its connector `props`) into
    /// `sink`, under a new connector name, starting where the source would on its own.
    pub(crate) fn new(
        source: SourceKind,
        props: BTreeMap<String, String>,
        sink: SinkKind,
        dbname: &str,
        rows: u64,
        checkpoint_ms: u64,
        server: &str,
    ) -> Self {
        Self {
            name: outflow_testkit::unique_name("bench"),
            source,
            props,
            start: None,
            sink: sink.name().to_owned(),
            dbname: dbname.to_owned(),
            kafka: sink.uses_kafka().then(KafkaLab::from_testkit),
            rows,
            checkpoint_ms,
            server: server.to_owned(),
        }
    }

    /// Runs it in a child process (off the runtime's threads).
    pub(crate) async fn run(self) -> Result<Drained, BoxError> {
        tokio::task::spawn_blocking(move || drain_in_child(&self)).await?
    }
}

/// What the child prints.
#[derive(Debug, Serialize, Deserialize)]
struct ChildFigures {
    rows: u64,
    seconds: f64,
    cpu_seconds: Option<f64>,
    peak_rss_mb: Option<f64>,
    server_cpu_seconds: f64,
}

/// Runs `spec` in a child process; returns its figures.
pub(crate) fn drain_in_child(spec: &DrainSpec) -> Result<Drained, BoxError> {
    // BENCH_CHILD_WRAPPER (e.g. `valgrind --tool=massif`) runs the child under a tool.
    let wrapper = std::env::var("BENCH_CHILD_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut command = std::process::Command::new(tool);
            command.args(words).arg(std::env::current_exe()?);
            command
        }
        None => std::process::Command::new(std::env::current_exe()?),
    };
    let output = command
        .arg("__drain")
        .arg(serde_json::to_string(spec)?)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("the drain of {} failed ({})", spec.name, output.status).into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().ok_or("the drain printed nothing")?;
    let figures: ChildFigures = serde_json::from_str(line)?;
    Ok(Drained {
        rows: figures.rows,
        seconds: figures.seconds,
        cpu_seconds: figures.cpu_seconds,
        peak_rss_mb: figures.peak_rss_mb,
        server_cpu_seconds: figures.server_cpu_seconds,
        latency: None,
    })
}

/// The child's side: runs the drain `spec_json` describes and prints its figures.
pub(crate) async fn run_child(spec_json: &str) -> Result<String, BoxError> {
    let spec: DrainSpec = serde_json::from_str(spec_json)?;
    let kind = SinkKind::parse(&spec.sink).ok_or("unknown sink")?;
    let (source, positions): (&'static dyn SourceBlock, &'static dyn PositionFamily) =
        match spec.source {
            SourceKind::Postgres => (&POSTGRES_SOURCE_BLOCK, &POSTGRES_POSITIONS),
            SourceKind::MariaDb => (&MARIADB_SOURCE_BLOCK, &BINLOG_POSITIONS),
        };
    let offsets = Arc::new(MemoryOffsetStore::new());
    if let Some(start) = &spec.start {
        offsets
            .commit(&spec.name, &SourcePosition::from_json(start, &[positions])?)
            .await?;
    }
    let sink = sinks::build(
        kind,
        (source, positions),
        &spec.name,
        &spec.name,
        &spec.dbname,
        spec.kafka.as_ref(),
    )
    .await?;
    let server: &'static str = Box::leak(spec.server.clone().into_boxed_str());
    let plan = DrainPlan {
        name: spec.name.clone(),
        rows: spec.rows,
        checkpoint: Duration::from_millis(spec.checkpoint_ms),
        offsets,
        latency: false,
        server,
        load: None,
    };
    let drained = match spec.source {
        SourceKind::Postgres => {
            drain(
                PostgresSource::new(PostgresConfig::from_properties(&spec.props)?),
                sink,
                plan,
            )
            .await?
        }
        SourceKind::MariaDb => {
            drain(
                MySqlSource::new(MySqlConfig::from_properties(&spec.props)?),
                sink,
                plan,
            )
            .await?
        }
    };
    Ok(serde_json::to_string(&ChildFigures {
        rows: drained.rows,
        seconds: drained.seconds,
        cpu_seconds: drained.cpu_seconds,
        peak_rss_mb: drained.peak_rss_mb,
        server_cpu_seconds: drained.server_cpu_seconds,
    })?)
}
