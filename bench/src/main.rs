//! `outflow-bench`: end-to-end throughput and latency of outflow against the physical
//! limits, measured in the same run on the same data (see `docs/benchmarks.md`).
//!
//! Each scenario starts its servers with testkit, pre-generates the row changes with no
//! consumer attached, measures the database's own tools reading them (the limits: before
//! and after outflow's runs, the faster of the two counts), then times outflow's pipeline
//! draining the same changes into each sink, in this process. Figures per run: events/s,
//! ratio to the limit, CPU seconds per million events (this process's user + system time)
//! and peak RSS (`VmHWM`, reset before each run), and for `latency` the commit → durable
//! percentiles. Output: a Markdown table on stdout and one JSON line per run (`--json
//! FILE` appends them to a file too).
//!
//! Modules: [`measure`] (runs, the durable-counting sink wrapper, the drain loop),
//! [`sinks`] (null, lake, Kafka as the daemon builds them), [`debezium`] (the peer:
//! Debezium on Kafka Connect, `--sinks …,kafka-json,debezium`), [`postgres`] and
//! [`mysql`] (the scenarios).

// The report on stdout and progress on stderr are this tool's output.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod child;
mod debezium;
mod measure;
mod mysql;
mod postgres;
mod sinks;
mod workload;

use std::io::Write as _;

use measure::{BoxError, Run, RunKind};
use sinks::SinkKind;

/// The daemon's allocator; the `system-allocator` feature leaves the system's, so that
/// heap profilers (valgrind's massif) see every allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// With `system-allocator`, the system's allocator counting live bytes, so a drain can
/// report its peak live heap beside its peak RSS (what the allocator keeps vs. what the
/// program holds).
#[cfg(feature = "system-allocator")]
#[allow(unsafe_code)] // GlobalAlloc is an unsafe trait; this only forwards to System.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Counting;
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    /// Peak live heap bytes so far.
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }

    fn grew(by: usize) {
        let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }

    // SAFETY: every call forwards to `System` with the caller's arguments unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            grew(layout.size());
            // SAFETY: forwarded as received.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            // SAFETY: forwarded as received.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
            // SAFETY: forwarded as received.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;
}

const SCENARIOS: [&str; 6] = [
    "pg-stream",
    "pg-stream-wide",
    "pg-snapshot",
    "mysql-stream",
    "mysql-snapshot",
    "latency",
];

/// Command-line settings.
struct Settings {
    scenarios: Vec<String>,
    changes: u64,
    rows: u64,
    seconds: u64,
    rate: u64,
    sinks: Vec<SinkKind>,
    json: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: outflow-bench <all|{}>... [--changes N (1000000)] [--rows N (5000000)]\n\
         \x20      [--seconds N (60)] [--rate TX_PER_S (5000)] [--sinks null,lake,kafka] [--json FILE]\n\
         (see docs/benchmarks.md)",
        SCENARIOS.join("|")
    );
    std::process::exit(2)
}

fn parse(args: &[String]) -> Settings {
    let mut settings = Settings {
        scenarios: Vec::new(),
        changes: 1_000_000,
        rows: 5_000_000,
        seconds: 60,
        rate: 5_000,
        sinks: SinkKind::ALL.to_vec(),
        json: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = || -> u64 {
            match args.next().map(|v| v.replace('_', "").parse::<u64>()) {
                Some(Ok(n)) if n > 0 => n,
                _ => usage(),
            }
        };
        match arg.as_str() {
            "--changes" => settings.changes = number(),
            "--rows" => settings.rows = number(),
            "--seconds" => settings.seconds = number(),
            "--rate" => settings.rate = number(),
            "--sinks" => {
                let Some(list) = args.next() else { usage() };
                settings.sinks = list
                    .split(',')
                    .map(|s| SinkKind::parse(s.trim()).unwrap_or_else(|| usage()))
                    .collect();
            }
            "--json" => settings.json = Some(args.next().cloned().unwrap_or_else(|| usage())),
            "all" => settings
                .scenarios
                .extend(SCENARIOS.iter().map(|s| (*s).to_owned())),
            s if SCENARIOS.contains(&s) => settings.scenarios.push(s.to_owned()),
            _ => usage(),
        }
    }
    if settings.scenarios.is_empty() {
        usage()
    }
    settings
}

async fn run(settings: &Settings) -> Result<Vec<Run>, BoxError> {
    let mut runs = Vec::new();
    for scenario in &settings.scenarios {
        let sinks = &settings.sinks;
        let result = match scenario.as_str() {
            "pg-stream" => postgres::stream(settings.changes, false, sinks).await?,
            "pg-stream-wide" => postgres::stream(settings.changes, true, sinks).await?,
            "pg-snapshot" => postgres::snapshot(settings.rows, sinks).await?,
            "mysql-stream" => mysql::stream(settings.changes, sinks).await?,
            "mysql-snapshot" => mysql::snapshot(settings.rows, sinks).await?,
            "latency" => postgres::latency(settings.rate, settings.seconds, sinks).await?,
            _ => usage(),
        };
        // Each scenario's table as soon as it is done: a long run shows progress.
        print_table(&result);
        runs.extend(result);
    }
    Ok(runs)
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn ratios(runs: &[Run], run: &Run) -> (Option<f64>, Option<f64>) {
    let of = |kind: RunKind| {
        runs.iter()
            .find(|r| r.scenario == run.scenario && r.kind == kind)
            .map(Run::rate)
    };
    let rate = run.rate();
    (
        of(RunKind::Limit).map(|l| rate / l),
        of(RunKind::Ceiling).map(|c| rate / c),
    )
}

fn print_table(runs: &[Run]) {
    println!(
        "| scenario | run | events | s | events/s | MB/s | × limit | × ceiling | CPU s / M events | server CPU s / M events | peak RSS MB | latency p50 / p99 / max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        let (limit, ceiling) = ratios(runs, run);
        let mbps = run.bytes.map(|b| b as f64 / 1e6 / run.seconds.max(1e-9));
        let cpu_per_m = run.cpu_seconds.map(|c| c / (run.events as f64 / 1e6));
        let server_per_m = run
            .server_cpu_seconds
            .map(|c| c / (run.events as f64 / 1e6));
        let latency = run.latency.as_ref().map_or_else(
            || "–".to_owned(),
            |l| format!("{:.1} / {:.1} / {:.1}", l.p50_ms, l.p99_ms, l.max_ms),
        );
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            run.scenario,
            run.what,
            run.events,
            run.seconds,
            run.rate(),
            fmt(mbps, 1),
            fmt(limit, 2),
            fmt(ceiling, 2),
            fmt(cpu_per_m, 2),
            fmt(server_per_m, 2),
            fmt(run.peak_rss_mb, 1),
            latency,
        );
    }
    println!();
}

/// The commit the binary runs at (`+dirty` with uncommitted changes), if in a checkout.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{head}+dirty"),
            _ => head,
        },
        None => "unknown".to_owned(),
    }
}

fn report(runs: &[Run], json: Option<&str>) -> Result<(), BoxError> {
    let commit = commit();
    println!("## All runs (commit {commit})\n");
    print_table(runs);
    let mut file = match json {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => None,
    };
    for run in runs {
        let (limit, ceiling) = ratios(runs, run);
        let line = serde_json::json!({
            "commit": commit,
            "scenario": run.scenario,
            "run": run.what,
            "events": run.events,
            "seconds": run.seconds,
            "events_per_second": run.rate(),
            "mb_per_second": run.bytes.map(|b| b as f64 / 1e6 / run.seconds.max(1e-9)),
            "ratio_to_limit": limit,
            "ratio_to_ceiling": ceiling,
            "cpu_seconds_per_million_events": run.cpu_seconds.map(|c| c / (run.events as f64 / 1e6)),
            "server_cpu_seconds_per_million_events": run.server_cpu_seconds.map(|c| c / (run.events as f64 / 1e6)),
            "peak_rss_mb": run.peak_rss_mb,
            "latency_ms": run.latency.as_ref().map(|l| serde_json::json!({
                "samples": l.samples, "p50": l.p50_ms, "p99": l.p99_ms, "max": l.max_ms,
            })),
        })
        .to_string();
        println!("{line}");
        if let Some(f) = file.as_mut() {
            writeln!(f, "{line}")?;
        }
    }
    Ok(())
}

/// `outflow-bench __drain SPEC`: one drain in this process (see [`child`]).
fn child_main(spec: &str) -> ! {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BoxError::from)
        .and_then(|runtime| runtime.block_on(child::run_child(spec)));
    match result {
        Ok(line) => {
            #[cfg(feature = "system-allocator")]
            eprintln!(
                "outflow-bench __drain: peak live heap {:.1} MB",
                counting::peak() as f64 / 1e6
            );
            println!("{line}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("outflow-bench __drain: {e}");
            std::process::exit(1)
        }
    }
}

fn main() {
    outflow::allocator::tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__drain") {
        child_main(args.get(1).map_or("", String::as_str));
    }
    let settings = parse(&args);
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
    let result = runtime.block_on(run(&settings));
    match result.and_then(|runs| report(&runs, settings.json.as_deref())) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let mut message = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("outflow-bench: {message}");
            std::process::exit(1)
        }
    }
}
