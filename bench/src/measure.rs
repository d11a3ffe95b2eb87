//! What a run measures and how: the [`Run`] record, this process's CPU time and peak
//! RSS, timing the databases' own tools, and [`drain`], which runs outflow's pipeline
//! until a given number of row events is durable in the sink.
//!
//! Durability is counted by [`Measured`], a sink wrapper that resolves its own handle
//! when the wrapped sink's does and then adds the batch's row events to a counter (and,
//! for the latency scenario, records commit → durable delays). A run therefore ends when
//! the last change is durable, not when a checkpoint happens to store its offset.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outflow_core::sink::durability;
use outflow_core::{
    DurableHandle, EventBatch, MemoryOffsetStore, Pipeline, PipelineConfig, Sink, SinkError, Source,
};
use tokio_util::sync::CancellationToken;

/// The error of a benchmark step; the run stops with its message.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a run is one of the database's own tools (a limit) or outflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunKind {
    /// The limit outflow is compared with (the fastest of its measurements in the run).
    Limit,
    /// A second reference (MariaDB's raw transfer ceiling).
    Ceiling,
    /// outflow's pipeline.
    Outflow,
    /// Debezium on Kafka Connect, the peer.
    Peer,
}

/// One measured run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Scenario name (`pg-stream`, …).
    pub scenario: String,
    /// What ran.
    pub what: String,
    /// Limit, ceiling or outflow.
    pub kind: RunKind,
    /// Row events (changes or snapshot rows) it moved.
    pub events: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Bytes of the source's change stream (WAL, binlog) or table, when known.
    pub bytes: Option<u64>,
    /// This process's CPU seconds during the run (outflow runs only).
    pub cpu_seconds: Option<f64>,
    /// This process's peak RSS during the run, in MB (outflow runs only).
    pub peak_rss_mb: Option<f64>,
    /// The database server's CPU seconds during the run.
    pub server_cpu_seconds: Option<f64>,
    /// Commit → durable latency percentiles, in ms (latency scenario).
    pub latency: Option<Latency>,
}

impl Run {
    /// Events per second.
    pub(crate) fn rate(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    /// A limit's (or ceiling's) run: no process figures.
    pub(crate) fn tool(
        scenario: &str,
        kind: RunKind,
        what: &str,
        events: u64,
        timed: Timed,
    ) -> Self {
        Self {
            scenario: scenario.to_owned(),
            what: what.to_owned(),
            kind,
            events,
            seconds: timed.seconds,
            bytes: None,
            cpu_seconds: None,
            peak_rss_mb: None,
            server_cpu_seconds: Some(timed.server_cpu),
            latency: None,
        }
    }

    /// An outflow run from its drain figures.
    pub(crate) fn outflow(scenario: &str, what: &str, events: u64, drained: &Drained) -> Self {
        Self {
            scenario: scenario.to_owned(),
            what: what.to_owned(),
            kind: RunKind::Outflow,
            events,
            seconds: drained.seconds,
            bytes: None,
            cpu_seconds: drained.cpu_seconds,
            peak_rss_mb: drained.peak_rss_mb,
            server_cpu_seconds: Some(drained.server_cpu_seconds),
            latency: drained.latency.clone(),
        }
    }

    /// A run of the peer (Debezium) from its figures.
    pub(crate) fn peer(scenario: &str, what: &str, events: u64, drained: &Drained) -> Self {
        Self {
            kind: RunKind::Peer,
            ..Self::outflow(scenario, what, events, drained)
        }
    }

    /// A run into `sink` over `bytes` of stream or table (outflow's, or the peer's when
    /// `sink` is Debezium), announced on stderr.
    pub(crate) fn drained(
        scenario: &str,
        sink: &crate::sinks::SinkKind,
        events: u64,
        bytes: u64,
        drained: &Drained,
    ) -> Self {
        eprintln!("{scenario}: {sink} {:.2} s", drained.seconds);
        let what = sink.to_string();
        let run = if *sink == crate::sinks::SinkKind::Debezium {
            Self::peer(scenario, &what, events, drained)
        } else {
            Self::outflow(scenario, &what, events, drained)
        };
        run.with_bytes(Some(bytes))
    }

    /// The same run with the stream's byte count.
    pub(crate) fn with_bytes(mut self, bytes: Option<u64>) -> Self {
        self.bytes = bytes;
        self
    }
}

/// Latency percentiles of one run, in milliseconds.
#[derive(Debug, Clone)]
pub(crate) struct Latency {
    /// Row events measured.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Latency {
    fn of(mut micros: Vec<i64>) -> Option<Self> {
        if micros.is_empty() {
            return None;
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let index = ((micros.len() as f64 - 1.0) * q).round() as usize;
            micros[index.min(micros.len() - 1)] as f64 / 1000.0
        };
        Some(Self {
            samples: micros.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

/// This process's user + system CPU seconds (`/proc/self/stat`, clock ticks of 1/100 s).
pub(crate) fn cpu_seconds() -> Option<f64> {
    cpu_seconds_of("self")
}

/// The user + system CPU seconds of process `pid` (a number, or `self`).
pub(crate) fn cpu_seconds_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// CPU seconds of every process named `comm` (user + system, plus those of its exited
/// children), so a difference before/after a run counts the server's work for it, the
/// backends that exit in between included.
pub(crate) fn server_cpu_seconds(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0.0;
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, after)) = stat.rsplit_once(')') else {
            continue;
        };
        if head.split_once('(').map(|(_, name)| name) != Some(comm) {
            continue;
        }
        let fields: Vec<&str> = after.split_whitespace().collect();
        for index in 11..=14 {
            ticks += fields
                .get(index)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    ticks / 100.0
}

/// Peak resident set of this process since the last reset, in MB.
pub(crate) fn peak_rss_mb() -> Option<f64> {
    peak_rss_mb_of("self")
}

/// Peak resident set of process `pid` (a number, or `self`) since its last reset, in MB.
pub(crate) fn peak_rss_mb_of(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak RSS to the current RSS.
pub(crate) fn reset_peak_rss() {
    reset_peak_rss_of("self");
}

/// Resets the peak RSS of process `pid` (a number, or `self`) to its current RSS.
pub(crate) fn reset_peak_rss_of(pid: &str) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// A property map.
pub(crate) fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A timed command: wall-clock seconds and the server's CPU seconds meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timed {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CPU seconds of the server's processes.
    pub server_cpu: f64,
}

impl Timed {
    /// The faster of two measurements.
    pub(crate) fn faster(self, other: Timed) -> Timed {
        if other.seconds < self.seconds {
            other
        } else {
            self
        }
    }
}

/// Runs a command with its output to /dev/null; returns the seconds it took and the CPU
/// seconds the processes named `server` spent meanwhile.
pub(crate) fn time_command(mut command: Command, server: &str) -> Result<Timed, BoxError> {
    let server_before = server_cpu_seconds(server);
    let started = Instant::now();
    let output = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Timed {
        seconds,
        server_cpu: server_cpu_seconds(server) - server_before,
    })
}

/// What [`Measured`] counts, shared with the drain loop.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    rows_durable: AtomicU64,
    /// Commit → durable delays in µs, when the run records them.
    delays: Option<Mutex<Vec<i64>>>,
}

impl Progress {
    /// Row events durable so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows_durable.load(Ordering::Acquire)
    }

    /// Counts `rows` row events seen elsewhere (a Kafka consumer of a peer's topic), with
    /// their commit → seen delays in µs when the run records them.
    pub(crate) fn observed(&self, rows: u64, delays_us: &[i64]) {
        if let Some(Ok(mut delays)) = self.delays.as_ref().map(Mutex::lock) {
            delays.extend_from_slice(delays_us);
        }
        self.rows_durable.fetch_add(rows, Ordering::AcqRel);
    }

    /// A progress counter for a run outside this pipeline, recording delays if `latency`.
    pub(crate) fn new(latency: bool) -> Arc<Self> {
        Arc::new(Self {
            rows_durable: AtomicU64::new(0),
            delays: latency.then(|| Mutex::new(Vec::with_capacity(1 << 20))),
        })
    }

    /// The latency percentiles recorded so far.
    pub(crate) fn latency(&self) -> Option<Latency> {
        self.delays
            .as_ref()
            .and_then(|d| d.lock().ok().map(|d| d.clone()))
            .and_then(Latency::of)
    }

    /// Forgets the latencies recorded so far (a warm-up's).
    pub(crate) fn clear_latency(&self) {
        if let Some(Ok(mut delays)) = self.delays.as_ref().map(Mutex::lock) {
            delays.clear();
        }
    }
}

/// A sink wrapper that counts durable row events (and records their latency).
pub(crate) struct Measured<S> {
    inner: S,
    progress: Arc<Progress>,
}

impl<S: Sink> Measured<S> {
    /// Wraps `inner`; `latency` records commit → durable delays of every row event.
    pub(crate) fn new(inner: S, latency: bool) -> (Self, Arc<Progress>) {
        let progress = Progress::new(latency);
        (
            Self {
                inner,
                progress: progress.clone(),
            },
            progress,
        )
    }
}

impl<S: Sink> Sink for Measured<S> {
    async fn write(&mut self, batch: EventBatch) -> Result<DurableHandle, SinkError> {
        let rows = batch.events.iter().filter(|e| e.kind.is_row()).count() as u64;
        let stamps: Option<Vec<i64>> = self.progress.delays.as_ref().map(|_| {
            batch
                .events
                .iter()
                .filter(|e| e.kind.is_row())
                .filter_map(|e| e.source_ts_us)
                .collect()
        });
        let handle = self.inner.write(batch).await?;
        let (notifier, ours) = durability();
        let progress = self.progress.clone();
        tokio::spawn(async move {
            match handle.wait().await {
                Ok(()) => {
                    if let (Some(stamps), Some(delays)) = (stamps, progress.delays.as_ref()) {
                        let now = outflow_core::now_us();
                        if let Ok(mut delays) = delays.lock() {
                            delays.extend(stamps.iter().map(|t| now - t));
                        }
                    }
                    progress.rows_durable.fetch_add(rows, Ordering::AcqRel);
                    notifier.durable();
                }
                Err(e) => notifier.failed(e),
            }
        });
        Ok(ours)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush().await
    }
}

/// Figures of one drain.
#[derive(Debug, Clone)]
pub(crate) struct Drained {
    /// Row events durable.
    pub rows: u64,
    /// Wall-clock seconds from start until `rows` row events were durable.
    pub seconds: f64,
    /// This process's CPU seconds in that time.
    pub cpu_seconds: Option<f64>,
    /// This process's peak RSS in that time, MB.
    pub peak_rss_mb: Option<f64>,
    /// The server's CPU seconds in that time.
    pub server_cpu_seconds: f64,
    /// Commit → durable latency, when recorded.
    pub latency: Option<Latency>,
}

/// Starts a load against the database, given the drain's progress; its task reports
/// the row changes it wrote.
pub(crate) type LoadStarter =
    Box<dyn FnOnce(Arc<Progress>) -> tokio::task::JoinHandle<Result<u64, BoxError>> + Send>;

/// How a drain starts and ends.
pub(crate) struct DrainPlan {
    /// Connector (and offset) name.
    pub name: String,
    /// Row events to wait for.
    pub rows: u64,
    /// Pipeline checkpoint (flush) interval.
    pub checkpoint: Duration,
    /// Process name of the database server (`postgres`, `mariadbd`).
    pub server: &'static str,
    /// Offsets to start from.
    pub offsets: Arc<MemoryOffsetStore>,
    /// Record commit → durable latency.
    pub latency: bool,
    /// Started once the pipeline runs (the latency scenario's load); the drain then
    /// waits for it to finish and for the rows it reports written.
    pub load: Option<LoadStarter>,
}

/// Runs `source` → `sink` until `plan.rows` row events are durable; returns the figures.
pub(crate) async fn drain<Src: Source, S: Sink>(
    source: Src,
    sink: S,
    mut plan: DrainPlan,
) -> Result<Drained, BoxError> {
    let (sink, progress) = Measured::new(sink, plan.latency);
    reset_peak_rss();
    let cpu_before = cpu_seconds();
    let server_before = server_cpu_seconds(plan.server);
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline::new(
        plan.name.clone(),
        source,
        sink,
        plan.offsets.clone(),
        pipeline_config(plan.checkpoint),
    );
    let mut task = tokio::spawn(pipeline.run(shutdown.clone()));
    let mut load = plan.load.take().map(|start| start(progress.clone()));
    let mut rows = plan.rows;
    loop {
        if let Some(running) = load.as_mut()
            && running.is_finished()
        {
            rows = running.await??;
            load = None;
        }
        if load.is_none() && progress.rows() >= rows {
            break;
        }
        if task.is_finished() {
            let ended = (&mut task).await?;
            if progress.rows() >= rows && load.is_none() {
                break;
            }
            return Err(format!(
                "{}: the pipeline ended after {} of {rows} rows: {ended:?}",
                plan.name,
                progress.rows()
            )
            .into());
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!("{}: not drained in 30 minutes", plan.name).into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let rss = peak_rss_mb();
    let server_cpu = server_cpu_seconds(plan.server) - server_before;
    shutdown.cancel();
    if !task.is_finished() {
        task.await?.map_err(|e| format!("{}: {e}", plan.name))?;
    }
    let latency = progress.latency();
    if progress.rows() > rows {
        return Err(format!(
            "{}: {} rows durable, {rows} written: duplicates",
            plan.name,
            progress.rows()
        )
        .into());
    }
    Ok(Drained {
        rows,
        seconds,
        cpu_seconds: cpu,
        peak_rss_mb: rss,
        server_cpu_seconds: server_cpu,
        latency,
    })
}

/// The daemon's pipeline settings with the run's checkpoint interval;
/// `BENCH_CHANNEL_CAPACITY`, `BENCH_CHANNEL_EVENTS`, `BENCH_MAX_IN_FLIGHT` and
/// `BENCH_MAX_BATCH_EVENTS` override the
/// defaults and `BENCH_CHECKPOINT_MS` the run's interval (tuning experiments).
fn pipeline_config(checkpoint: Duration) -> PipelineConfig {
    let defaults = PipelineConfig::default();
    let from_env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    PipelineConfig {
        checkpoint_interval: std::env::var("BENCH_CHECKPOINT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(checkpoint, Duration::from_millis),
        channel_capacity: from_env("BENCH_CHANNEL_CAPACITY", defaults.channel_capacity),
        channel_events: from_env("BENCH_CHANNEL_EVENTS", defaults.channel_events),
        max_in_flight: from_env("BENCH_MAX_IN_FLIGHT", defaults.max_in_flight),
        max_batch_events: from_env("BENCH_MAX_BATCH_EVENTS", defaults.max_batch_events),
    }
}
