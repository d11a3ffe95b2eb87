//! Per-connector counters and their Prometheus text exposition (`GET /metrics`).
//!
//! A connector's [`ConnectorMetrics`] lives as long as the connector in this worker: its
//! pipeline, source and sink count into the same atomics across task restarts, so the
//! counters only reset when the worker restarts (Prometheus handles that). The text is
//! built on request from the atomics; nothing is computed per event here.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use outflow_core::PipelineMetrics;
use outflow_core::connector::{SnapshotProgress, SourceMetrics, SourcePlugin};
use serde_json::{Value, json};

/// Everything counted about one connector.
#[derive(Debug, Default)]
pub struct ConnectorMetrics {
    /// The pipeline's counters.
    pub pipeline: Arc<PipelineMetrics>,
    /// The source's own counters, made by its plugin when the connector's first task
    /// starts (and again if a reconfiguration changes the plugin).
    source: RwLock<Option<PluginMetrics>>,
    /// The sink's own counters, made when the connector's first task starts (and again
    /// if the worker's sink changes).
    sink: RwLock<Option<NamedSinkMetrics>>,
    /// Task restarts after transient errors.
    pub restarts: AtomicU64,
    /// When the current task started (µs since the epoch), for the snapshot ETA.
    pub task_started_us: AtomicI64,
}

/// A sink's counters and the sink's name.
#[derive(Debug, Clone)]
struct NamedSinkMetrics {
    sink: &'static str,
    metrics: Arc<dyn outflow_core::SinkMetrics>,
}

/// A source's counters and the plugin that made them.
#[derive(Debug, Clone)]
struct PluginMetrics {
    /// The plugin's first class name: which plugin it is.
    plugin: &'static str,
    metrics: Arc<dyn SourceMetrics>,
}

impl ConnectorMetrics {
    /// The source's counters for a task of `plugin`: the ones the connector has, when
    /// the same plugin made them, else new ones.
    pub fn source_for(&self, plugin: &dyn SourcePlugin) -> Arc<dyn SourceMetrics> {
        let id = plugin.classes().first().map_or("", |class| class.name);
        let mut slot = self.source.write().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(current) if current.plugin == id => Arc::clone(&current.metrics),
            _ => {
                let metrics = plugin.metrics();
                *slot = Some(PluginMetrics {
                    plugin: id,
                    metrics: Arc::clone(&metrics),
                });
                metrics
            }
        }
    }

    /// The sink's counters for a task writing to `sink`: the ones the connector has when
    /// they are that sink's, else `make()`'s.
    pub fn sink_for(
        &self,
        sink: &'static str,
        make: impl FnOnce() -> Arc<dyn outflow_core::SinkMetrics>,
    ) -> Arc<dyn outflow_core::SinkMetrics> {
        let mut slot = self.sink.write().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(current) if current.sink == sink => Arc::clone(&current.metrics),
            _ => {
                let metrics = make();
                *slot = Some(NamedSinkMetrics {
                    sink,
                    metrics: Arc::clone(&metrics),
                });
                metrics
            }
        }
    }

    /// The samples of the source's and the sink's own families.
    fn component_samples(&self) -> Vec<outflow_core::MetricSample> {
        let mut samples = self.source().map(|s| s.samples()).unwrap_or_default();
        if let Some(sink) = &*self.sink.read().unwrap_or_else(PoisonError::into_inner) {
            samples.extend(sink.metrics.samples());
        }
        samples
    }

    /// The source's counters, once a task has started.
    fn source(&self) -> Option<Arc<dyn SourceMetrics>> {
        self.source
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|current| Arc::clone(&current.metrics))
    }

    /// Where the source's snapshot stands (all zero before a task started).
    fn source_snapshot(&self) -> SnapshotProgress {
        self.source()
            .map(|source| source.snapshot())
            .unwrap_or_default()
    }

    /// Marks the start of a task.
    pub fn task_started(&self) {
        self.task_started_us
            .store(outflow_core::now_us(), Ordering::Relaxed);
    }

    /// The `snapshot` object of the status while a snapshot runs: rows done, estimated
    /// total, tables done and total, and an ETA from the rate so far.
    pub fn snapshot_status(&self) -> Option<Value> {
        let SnapshotProgress {
            streaming,
            rows,
            rows_estimate: estimate,
            tables,
            tables_done,
        } = self.source_snapshot();
        if streaming || tables == 0 {
            return None;
        }
        let elapsed_s = (outflow_core::now_us() - self.task_started_us.load(Ordering::Relaxed))
            .max(1) as f64
            / 1e6;
        let rate = rows as f64 / elapsed_s;
        let eta = (rate > 0.0 && estimate > rows).then(|| ((estimate - rows) as f64 / rate).ceil());
        Some(json!({
            "rows": rows,
            "rows_estimate": estimate,
            "tables": tables,
            "tables_done": tables_done,
            "rows_per_second": rate.round(),
            "eta_seconds": eta,
        }))
    }
}

/// One connector as the exposition sees it.
#[derive(Debug)]
pub struct ConnectorSample<'a> {
    /// Connector name.
    pub name: &'a str,
    /// Task state (RUNNING, FAILED, …).
    pub state: &'static str,
    /// Its counters.
    pub metrics: &'a Arc<ConnectorMetrics>,
}

/// A label value escaped for the text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label(v));
            }
            self.out.push('}');
        }
        // Prometheus' text format spells infinities +Inf / -Inf.
        if value.is_infinite() {
            let sign = if value > 0.0 { '+' } else { '-' };
            let _ = writeln!(self.out, " {sign}Inf");
        } else {
            let _ = writeln!(self.out, " {value}");
        }
    }
}

/// A per-connector metric: name, type, help, value.
type ConnectorGauge = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ConnectorMetrics) -> f64,
);

fn load(v: &AtomicU64) -> f64 {
    v.load(Ordering::Relaxed) as f64
}

const PER_CONNECTOR: &[ConnectorGauge] = &[
    (
        "outflow_connector_events_received_total",
        "counter",
        "Events received from the source.",
        |m| load(&m.pipeline.events_received),
    ),
    (
        "outflow_connector_events_skipped_total",
        "counter",
        "Events dropped as already delivered (at or before the resume position).",
        |m| load(&m.pipeline.events_skipped),
    ),
    (
        "outflow_connector_events_durable_total",
        "counter",
        "Events durable in the sink.",
        |m| load(&m.pipeline.events_durable),
    ),
    (
        "outflow_connector_batches_committed_total",
        "counter",
        "Batches durable in the sink.",
        |m| load(&m.pipeline.batches_durable),
    ),
    (
        "outflow_connector_transactions_committed_total",
        "counter",
        "Source transactions durable in the sink.",
        |m| load(&m.pipeline.transactions_durable),
    ),
    (
        "outflow_connector_offset_commits_total",
        "counter",
        "Offset commits that advanced the stored position.",
        |m| load(&m.pipeline.offset_commits),
    ),
    (
        "outflow_connector_queue_batches",
        "gauge",
        "Batches waiting between source and sink.",
        |m| load(&m.pipeline.queue_batches),
    ),
    (
        "outflow_connector_batches_in_flight",
        "gauge",
        "Batches accepted by the sink and not yet durable.",
        |m| load(&m.pipeline.batches_in_flight),
    ),
    (
        "outflow_connector_restarts_total",
        "counter",
        "Task restarts after transient errors.",
        |m| load(&m.restarts),
    ),
    (
        "outflow_connector_last_event_timestamp_seconds",
        "gauge",
        "Source timestamp of the last durable event.",
        |m| m.pipeline.last_event_source_us.load(Ordering::Relaxed) as f64 / 1e6,
    ),
    (
        "outflow_connector_last_commit_timestamp_seconds",
        "gauge",
        "Wall-clock time of the last offset commit.",
        |m| m.pipeline.last_commit_us.load(Ordering::Relaxed) as f64 / 1e6,
    ),
    (
        "outflow_connector_milliseconds_behind_source",
        "gauge",
        "Now minus the source timestamp of the last durable event.",
        |m| {
            let last = m.pipeline.last_event_source_us.load(Ordering::Relaxed);
            if last == 0 {
                0.0
            } else {
                ((outflow_core::now_us() - last).max(0) / 1000) as f64
            }
        },
    ),
    (
        "outflow_snapshot_rows_done",
        "gauge",
        "Snapshot rows read in the current snapshot.",
        |m| m.source_snapshot().rows as f64,
    ),
    (
        "outflow_snapshot_rows_estimate",
        "gauge",
        "Estimated rows of the current snapshot.",
        |m| m.source_snapshot().rows_estimate as f64,
    ),
    (
        "outflow_snapshot_tables_remaining",
        "gauge",
        "Tables of the current snapshot not yet read.",
        |m| {
            let snapshot = m.source_snapshot();
            snapshot.tables.saturating_sub(snapshot.tables_done) as f64
        },
    ),
];

/// The Prometheus text exposition (format 0.0.4) of every connector.
pub fn render(connectors: &[ConnectorSample<'_>]) -> String {
    let mut x = Exposition {
        out: String::with_capacity(4096),
    };
    x.family(
        "outflow_connector_up",
        "gauge",
        "1 for the connector's task state, by state.",
    );
    for c in connectors {
        x.sample(
            "outflow_connector_up",
            &[("connector", c.name), ("state", c.state)],
            1.0,
        );
    }
    for (name, kind, help, value) in PER_CONNECTOR {
        x.family(name, kind, help);
        for c in connectors {
            x.sample(name, &[("connector", c.name)], value(c.metrics));
        }
    }
    // The sources' and sinks' own families, each once, in the order the connectors
    // first show them.
    let sources: Vec<Vec<outflow_core::MetricSample>> = connectors
        .iter()
        .map(|c| c.metrics.component_samples())
        .collect();
    let mut families: Vec<&outflow_core::MetricSample> = Vec::new();
    for sample in sources.iter().flatten() {
        if !families.iter().any(|f| f.name == sample.name) {
            families.push(sample);
        }
    }
    for family in families {
        x.family(family.name, family.kind.as_str(), family.help);
        for (c, samples) in connectors.iter().zip(&sources) {
            for sample in samples.iter().filter(|s| s.name == family.name) {
                x.sample(sample.name, &[("connector", c.name)], sample.value);
            }
        }
    }
    x.family(
        "outflow_table_events_total",
        "counter",
        "Durable row events by table and operation (c, u, d, r, t).",
    );
    for c in connectors {
        for (table, ops) in c.metrics.pipeline.table_ops() {
            for (op, n) in [
                ("c", ops.create),
                ("u", ops.update),
                ("d", ops.delete),
                ("r", ops.read),
                ("t", ops.truncate),
            ] {
                if n > 0 {
                    x.sample(
                        "outflow_table_events_total",
                        &[("connector", c.name), ("table", &table), ("op", op)],
                        n as f64,
                    );
                }
            }
        }
    }
    x.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_status_while_a_snapshot_runs() {
        let m = ConnectorMetrics::default();
        assert_eq!(m.snapshot_status(), None);
        m.task_started_us
            .store(outflow_core::now_us() - 2_000_000, Ordering::Relaxed);
        let source = m.source_for(&outflow_postgres::plugin::PostgresPlugin);
        let pg = Arc::clone(&source)
            .as_any_arc()
            .downcast::<outflow_postgres::source::PostgresMetrics>()
            .unwrap();
        pg.snapshot_tables.store(3, Ordering::Relaxed);
        pg.snapshot_tables_done.store(1, Ordering::Relaxed);
        pg.snapshot_rows.store(1000, Ordering::Relaxed);
        pg.snapshot_rows_estimate.store(3000, Ordering::Relaxed);
        let status = m.snapshot_status().unwrap();
        assert_eq!(status["rows"], 1000);
        assert_eq!(status["tables_done"], 1);
        // 500 rows/s, 2000 rows to go.
        let eta = status["eta_seconds"].as_f64().unwrap();
        assert!((3.0..=5.0).contains(&eta), "{status}");
        pg.streaming.store(true, Ordering::Relaxed);
        assert_eq!(m.snapshot_status(), None);
    }

    #[test]
    fn exposition_has_help_type_and_escaped_labels() {
        let metrics = Arc::new(ConnectorMetrics::default());
        metrics.pipeline.events_received.store(5, Ordering::Relaxed);
        let text = render(&[ConnectorSample {
            name: "a\"b",
            state: "RUNNING",
            metrics: &metrics,
        }]);
        assert!(text.contains("# TYPE outflow_connector_events_received_total counter"));
        assert!(text.contains("outflow_connector_events_received_total{connector=\"a\\\"b\"} 5"));
        assert!(text.contains("outflow_connector_up{connector=\"a\\\"b\",state=\"RUNNING\"} 1"));
    }
}
