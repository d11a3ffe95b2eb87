//! `outflow-bench`: end-to-end throughput of outflow against the physical limits,
//! measured in the same run on the same data (see `docs/benchmarks.md`).
//!
//! Each scenario starts its servers with testkit, pre-generates the row changes with no
//! consumer attached, measures the database's own tools reading them (the limits), then
//! times outflow's pipeline draining the same changes into each sink, in this process.
//! Figures per run: events/s, ratio to each limit, CPU seconds per million events (this
//! process's user + system time during the drain) and peak RSS (`VmHWM`, reset before
//! each drain through `/proc/self/clear_refs`). Output: a table on stdout and one JSON
//! line per run (`--json FILE` appends them to a file too).
//!
//! Scenarios: `mysql-stream` (MariaDB binlog: 60 % insert / 30 % update / 10 % delete of a
//! 10-column row). The Postgres, snapshot, Kafka and latency scenarios of issue 9 follow.

// The report on stdout and progress on stderr are this tool's output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use outflow_core::envelope::{ConnectorFlavor, EnvelopeConfig, EnvelopeFormatter};
use outflow_core::transforms::TransformChain;
use outflow_core::{
    BinlogPosition, MemoryOffsetStore, NullSink, OffsetStore, Pipeline, PipelineConfig, Sink,
    SourcePosition,
};
use outflow_lake::{LakeSink, LakeSinkConfig};
use outflow_mysql::{MySqlConfig, MySqlSource};
use outflow_testkit::{CDC_PASSWORD, CDC_USER, mariadb};
use tokio_util::sync::CancellationToken;

/// The daemon's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One measured run.
#[derive(Debug, Clone)]
struct Run {
    scenario: &'static str,
    what: String,
    events: u64,
    seconds: f64,
    bytes: Option<u64>,
    cpu_seconds: Option<f64>,
    peak_rss_mb: Option<f64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

/// This process's user + system CPU seconds (`/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// Peak resident set of this process since the last reset, in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Times a command whose output goes to /dev/null (or where it writes itself).
fn time_command(mut command: Command) -> Result<f64, BoxError> {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !status.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&status.stderr)
        )
        .into());
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Drains `source` into `sink` from `start` until the stored offset reaches the
/// transaction at `last`; returns the run's figures.
async fn drain<S: Sink>(
    name: &str,
    source: MySqlSource,
    sink: S,
    start: BinlogPosition,
    last: (String, u64),
    checkpoint: Duration,
) -> Result<(f64, Option<f64>, Option<f64>), BoxError> {
    let offsets = Arc::new(MemoryOffsetStore::new());
    offsets.commit(name, &SourcePosition::Binlog(start)).await?;
    reset_peak_rss();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline::new(
        name,
        source,
        sink,
        offsets.clone(),
        PipelineConfig {
            checkpoint_interval: checkpoint,
            ..PipelineConfig::default()
        },
    );
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    loop {
        if let Some(SourcePosition::Binlog(p)) = offsets.load(name).await?
            && (p.file_number(), p.pos)
                >= (
                    BinlogPosition {
                        file: last.0.clone(),
                        ..p.clone()
                    }
                    .file_number(),
                    last.1,
                )
        {
            break;
        }
        if task.is_finished() {
            return Err(format!("{name}: the pipeline ended: {:?}", task.await?).into());
        }
        if started.elapsed() > Duration::from_secs(1800) {
            return Err(format!("{name}: did not drain in 30 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let rss = peak_rss_mb();
    shutdown.cancel();
    task.await?.map_err(|e| format!("{name}: {e}"))?;
    Ok((seconds, cpu, rss))
}

async fn mysql_stream(changes: u64) -> Result<Vec<Run>, BoxError> {
    let server = mariadb();
    let db = server.create_database("bench").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, account BIGINT, amount DECIMAL(12,2),
           note VARCHAR(64), created DATETIME(6), payload JSON, active BOOL, ref UUID,
           score DOUBLE, day DATE)",
    )
    .await?;
    let status = |row: Option<mysql_async::Row>| -> Result<(String, u64), BoxError> {
        let row = row.ok_or("SHOW MASTER STATUS returned nothing")?;
        Ok((
            row.get::<String, _>(0).ok_or("no file")?,
            row.get::<u64, _>(1).ok_or("no position")?,
        ))
    };
    let (start_file, start_pos) = status(conn.query_first("SHOW MASTER STATUS").await?)?;
    // Blocks of 1,000 changes: 600 inserts, 300 updates, 100 deletes, one statement each.
    eprintln!("mysql-stream: writing {changes} row changes");
    let generating = Instant::now();
    let mut written = 0u64;
    let mut next_id = 1u64;
    let mut last = (start_file.clone(), start_pos);
    while written < changes {
        let block = (changes - written).min(1000);
        let inserts = block * 6 / 10;
        let updates = block * 3 / 10;
        let deletes = block - inserts - updates;
        let first = next_id;
        let statements = [
            (inserts > 0).then(|| {
                format!(
                    "INSERT INTO t SELECT seq, seq * 1000003, seq / 7, CONCAT('row number ', seq, ' with some text'),
                       TIMESTAMP('2023-11-14 22:13:20.123456') + INTERVAL seq SECOND,
                       CONCAT('{{\"k\": ', seq, ', \"tags\": [\"a\", \"b\"]}}'), seq % 2,
                       UUID(), seq * 0.5, DATE('2024-02-29') + INTERVAL seq % 1000 DAY
                     FROM seq_{first}_to_{}",
                    first + inserts - 1
                )
            }),
            (updates > 0).then(|| {
                format!(
                    "UPDATE t SET amount = amount + 1, note = 'changed' WHERE id BETWEEN {first} AND {}",
                    first + updates - 1
                )
            }),
            (deletes > 0).then(|| {
                format!(
                    "DELETE FROM t WHERE id BETWEEN {} AND {}",
                    first + updates,
                    first + updates + deletes - 1
                )
            }),
        ];
        for statement in statements.into_iter().flatten() {
            last = status(conn.query_first("SHOW MASTER STATUS").await?)?;
            conn.query_drop(statement).await?;
        }
        next_id += inserts;
        written += block;
    }
    eprintln!(
        "mysql-stream: written in {:.1} s",
        generating.elapsed().as_secs_f64()
    );
    let (end_file, end_pos) = status(conn.query_first("SHOW MASTER STATUS").await?)?;
    let _ = end_pos;
    let binlog_bytes = {
        let mut bytes = 0u64;
        let mut file = start_file.clone();
        loop {
            let path = server.binlog_dir().join(&file);
            let size = std::fs::metadata(&path)?.len();
            bytes += if file == start_file {
                size.saturating_sub(start_pos)
            } else {
                size
            };
            if file == end_file {
                break;
            }
            let (base, number) = file.rsplit_once('.').ok_or("binlog name")?;
            let next: u64 = number.parse::<u64>()? + 1;
            file = format!("{base}.{next:0width$}", width = number.len());
        }
        bytes
    };

    let mut runs = Vec::new();
    let port = server.port().to_string();
    let remote = |extra: &[String]| {
        let mut command = Command::new("mariadb-binlog");
        command.args([
            "--read-from-remote-server".to_owned(),
            "--host=127.0.0.1".to_owned(),
            format!("--port={port}"),
            format!("--user={CDC_USER}"),
            format!("--password={CDC_PASSWORD}"),
            format!("--start-position={start_pos}"),
            "--to-last-log".to_owned(),
        ]);
        command.args(extra);
        command.arg(&start_file);
        command
    };
    let raw_dir = tempfile::tempdir()?;
    let raw_args = [
        "--raw".to_owned(),
        format!("--result-file={}/", raw_dir.path().display()),
    ];
    // A first read warms the page cache for the limits and outflow alike.
    time_command(remote(&raw_args))?;
    let raw_seconds = time_command(remote(&raw_args))?;
    runs.push(Run {
        scenario: "mysql-stream",
        what: "limit: mariadb-binlog --raw (transfer)".into(),
        events: changes,
        seconds: raw_seconds,
        bytes: Some(binlog_bytes),
        cpu_seconds: None,
        peak_rss_mb: None,
    });
    let decode_seconds = time_command(remote(&[
        "--base64-output=decode-rows".to_owned(),
        "-v".to_owned(),
    ]))?;
    runs.push(Run {
        scenario: "mysql-stream",
        what: "limit: mariadb-binlog decode-rows -v (C decoder)".into(),
        events: changes,
        seconds: decode_seconds,
        bytes: Some(binlog_bytes),
        cpu_seconds: None,
        peak_rss_mb: None,
    });

    let source = |server_id: &str| -> Result<MySqlSource, BoxError> {
        let include = format!("{}\\..*", db.name());
        Ok(MySqlSource::new(MySqlConfig::from_properties(&props(&[
            (
                "connector.class",
                "io.debezium.connector.mariadb.MariaDbConnector",
            ),
            ("database.hostname", "127.0.0.1"),
            ("database.port", port.as_str()),
            ("database.user", CDC_USER),
            ("database.password", CDC_PASSWORD),
            ("database.server.id", server_id),
            ("table.include.list", include.as_str()),
        ]))?))
    };
    let start = BinlogPosition {
        file: start_file.clone(),
        pos: start_pos,
        // The first transaction starts here: only its BEGIN (event 0) counts as seen.
        event: 0,
        row: 0,
        gtid: None,
        gtid_set: None,
        snapshot: false,
        snapshot_reads: None,
    };
    let (seconds, cpu, rss) = drain(
        "bench-null",
        source("6101")?,
        NullSink::default(),
        start.clone(),
        last.clone(),
        Duration::from_secs(1),
    )
    .await?;
    runs.push(Run {
        scenario: "mysql-stream",
        what: "outflow → null".into(),
        events: changes,
        seconds,
        bytes: Some(binlog_bytes),
        cpu_seconds: cpu,
        peak_rss_mb: rss,
    });
    let lake_root = tempfile::tempdir()?;
    let root = lake_root.path().to_string_lossy().into_owned();
    let formatter = EnvelopeFormatter::new(EnvelopeConfig::from_properties(
        ConnectorFlavor::MariaDb,
        &props(&[("topic.prefix", "bench")]),
    )?);
    let sink = LakeSink::start(
        LakeSinkConfig::from_properties("bench-lake", &props(&[("lake.path", root.as_str())]))?,
        formatter,
        TransformChain::default(),
        None,
    )
    .await?;
    let (seconds, cpu, rss) = drain(
        "bench-lake",
        source("6102")?,
        sink,
        start,
        last,
        Duration::from_millis(200),
    )
    .await?;
    runs.push(Run {
        scenario: "mysql-stream",
        what: "outflow → lake (Avro, snappy)".into(),
        events: changes,
        seconds,
        bytes: Some(binlog_bytes),
        cpu_seconds: cpu,
        peak_rss_mb: rss,
    });
    Ok(runs)
}

fn report(runs: &[Run], json: Option<&str>) -> Result<(), BoxError> {
    let limit = |name: &str| runs.iter().find(|r| r.what.contains(name)).map(Run::rate);
    let decode = limit("decode-rows");
    let raw = limit("--raw");
    println!(
        "| scenario | run | events | s | events/s | MB/s | × decode limit | × transfer limit | CPU s / M events | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut file = match json {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => None,
    };
    let mut lines = Vec::with_capacity(runs.len());
    for run in runs {
        let rate = run.rate();
        let mbps = run.bytes.map(|b| b as f64 / 1e6 / run.seconds.max(1e-9));
        let cpu_per_m = run.cpu_seconds.map(|c| c / (run.events as f64 / 1e6));
        let fmt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
        };
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} |",
            run.scenario,
            run.what,
            run.events,
            run.seconds,
            rate,
            fmt(mbps, 1),
            fmt(decode.map(|d| rate / d), 2),
            fmt(raw.map(|r| rate / r), 2),
            fmt(cpu_per_m, 2),
            fmt(run.peak_rss_mb, 1),
        );
        let line = serde_json::json!({
            "scenario": run.scenario,
            "run": run.what,
            "events": run.events,
            "seconds": run.seconds,
            "events_per_second": rate,
            "mb_per_second": mbps,
            "ratio_to_decode_limit": decode.map(|d| rate / d),
            "ratio_to_transfer_limit": raw.map(|r| rate / r),
            "cpu_seconds_per_million_events": cpu_per_m,
            "peak_rss_mb": run.peak_rss_mb,
        });
        lines.push(line.to_string());
    }
    println!();
    for line in lines {
        println!("{line}");
        if let Some(f) = file.as_mut() {
            writeln!(f, "{line}")?;
        }
    }
    Ok(())
}

fn usage() -> ! {
    eprintln!(
        "usage: outflow-bench mysql-stream [--changes N] [--json FILE]\n\
         (see docs/benchmarks.md)"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(scenario) = args.first().cloned() else {
        usage()
    };
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let changes: u64 = match value("--changes").map(|v| v.parse()) {
        None => 1_000_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => usage(),
    };
    let json = value("--json");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("outflow-bench: cannot start the runtime: {e}");
            std::process::exit(1)
        }
    };
    let result = runtime.block_on(async {
        match scenario.as_str() {
            "mysql-stream" => mysql_stream(changes).await,
            _ => usage(),
        }
    });
    match result.and_then(|runs| report(&runs, json.as_deref())) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("outflow-bench: {e}");
            std::process::exit(1)
        }
    }
}
