//! The peer: Debezium 3.6 on the lab's Kafka Connect worker (testkit), reading the same
//! data as outflow's runs and writing it to the same broker with Connect's
//! `JsonConverter` (schemas on), the converter of the `kafka-json` run.
//!
//! A run creates the connector over Connect's REST API (or resumes one prepared before
//! the data was written, [`Prepared`]) and ends when the topic holds the records the
//! data makes (row events, plus Debezium's tombstone after each delete), read from the
//! topic's end offsets. Figures are the worker JVM's: its CPU time and its peak RSS
//! (`VmHWM`, reset before the run), beside the database server's CPU time. For the
//! latency scenario a consumer reads the topic and takes each record's
//! commit → visible-in-Kafka delay (`source.ts_us` to the consumer receiving it).
//!
//! Debezium runs at its defaults (`max.batch.size`, `poll.interval.ms`, Connect's
//! producer settings); the worker is standalone, where Kafka Connect offers no
//! exactly-once source support (`exactly.once.source.support` is a distributed-mode
//! setting), so that variant is not measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use serde_json::{Value, json};

use crate::measure::{
    BoxError, Drained, LoadStarter, Progress, cpu_seconds_of, peak_rss_mb_of, reset_peak_rss_of,
    server_cpu_seconds,
};

/// The longest a run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);

/// One REST call to the lab's Connect worker; the JSON answer (or `null`).
async fn call(method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, BoxError> {
    let url = format!("{}{path}", outflow_testkit::debezium().url());
    let mut request = reqwest::Client::new().request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        return Err(format!("{url}: {status}: {text}").into());
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `POST /connectors`: creates `name` with `config`.
async fn create(name: &str, mut config: Value) -> Result<(), BoxError> {
    config["name"] = json!(name);
    call(
        reqwest::Method::POST,
        "/connectors",
        Some(json!({"name": name, "config": config})),
    )
    .await
    .map(drop)
}

/// Waits until `name`'s connector reports `state` (and, when RUNNING, its task too).
async fn wait_state(name: &str, state: &str) -> Result<(), BoxError> {
    let started = Instant::now();
    loop {
        let status = call(
            reqwest::Method::GET,
            &format!("/connectors/{name}/status"),
            None,
        )
        .await
        .unwrap_or(Value::Null);
        let task = &status["tasks"][0]["state"];
        if task == "FAILED" {
            return Err(format!("Debezium's task failed: {}", status["tasks"][0]["trace"]).into());
        }
        if status["connector"]["state"] == state && (state != "RUNNING" || task == "RUNNING") {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err(format!("{name} not {state} in 120 s: {status}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The records in `topic` now (end offsets over its partitions; Debezium does not
/// write transactions, so offsets count records), 0 before it exists.
fn records_in(consumer: &BaseConsumer, topic: &str) -> u64 {
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return 0;
    };
    let Some(found) = metadata.topics().first() else {
        return 0;
    };
    found
        .partitions()
        .iter()
        .filter_map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                .ok()
        })
        .map(|(low, high)| u64::try_from(high - low).unwrap_or(0))
        .sum()
}

fn consumer() -> Result<BaseConsumer, BoxError> {
    let mut config = ClientConfig::new();
    config
        .set(
            "bootstrap.servers",
            outflow_testkit::broker().bootstrap_servers(),
        )
        .set("group.id", outflow_testkit::unique_name("bench-peer"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    Ok(config.create()?)
}

/// A Debezium connector made before the data was written and stopped (it has taken its
/// schema and start position), resumed when its run starts.
pub(crate) struct Prepared {
    name: String,
}

impl Prepared {
    /// Creates `name` with `config`, waits until it streams (it has committed an
    /// offset), then stops it.
    pub(crate) async fn create(name: &str, config: Value) -> Result<Self, BoxError> {
        create(name, config).await?;
        wait_state(name, "RUNNING").await?;
        let started = Instant::now();
        loop {
            let offsets = call(
                reqwest::Method::GET,
                &format!("/connectors/{name}/offsets"),
                None,
            )
            .await?;
            if offsets["offsets"].as_array().is_some_and(|o| !o.is_empty()) {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(format!("{name}: no offset committed in 120 s").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        call(
            reqwest::Method::PUT,
            &format!("/connectors/{name}/stop"),
            None,
        )
        .await?;
        wait_state(name, "STOPPED").await?;
        Ok(Self {
            name: name.to_owned(),
        })
    }
}

/// How a peer run starts.
pub(crate) enum Start {
    /// Create this connector (`name`, config) now.
    Create(String, Value),
    /// Resume one made before the data was written.
    Resume(Prepared),
}

/// Runs Debezium until `topic` holds `records` records (or, with `load`, until the load
/// is done and every row it reports is seen); then deletes the connector.
pub(crate) async fn run(
    start: Start,
    topic: &str,
    records: u64,
    server: &'static str,
    load: Option<LoadStarter>,
) -> Result<Drained, BoxError> {
    let worker = outflow_testkit::debezium();
    let pid = worker.pid().to_string();
    reset_peak_rss_of(&pid);
    let cpu_before = cpu_seconds_of(&pid);
    let server_before = server_cpu_seconds(server);
    let started = Instant::now();
    let name = match start {
        Start::Create(name, config) => {
            create(&name, config).await?;
            name
        }
        Start::Resume(prepared) => {
            call(
                reqwest::Method::PUT,
                &format!("/connectors/{}/resume", prepared.name),
                None,
            )
            .await?;
            prepared.name
        }
    };
    let progress = Progress::new(load.is_some());
    let (rows, seconds) = match load {
        None => {
            let consumer = consumer()?;
            loop {
                if records_in(&consumer, topic) >= records {
                    break;
                }
                if started.elapsed() > RUN_TIMEOUT {
                    return Err(format!("{name}: not done in 30 minutes").into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (records, started.elapsed().as_secs_f64())
        }
        Some(load) => {
            let reader = tokio::task::spawn_blocking({
                let (progress, topic) = (progress.clone(), topic.to_owned());
                move || read_latencies(&topic, &progress)
            });
            let written = load(progress.clone()).await??;
            while progress.rows() < written {
                if started.elapsed() > RUN_TIMEOUT || reader.is_finished() {
                    return Err(
                        format!("{name}: {} of {written} rows seen", progress.rows()).into(),
                    );
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (written, started.elapsed().as_secs_f64())
        }
    };
    let cpu = cpu_seconds_of(&pid).zip(cpu_before).map(|(b, a)| b - a);
    let rss = peak_rss_mb_of(&pid);
    let server_cpu = server_cpu_seconds(server) - server_before;
    // The reader stops once the connector is gone and its topic quiet.
    progress.observed(0, &[]);
    call(
        reqwest::Method::DELETE,
        &format!("/connectors/{name}"),
        None,
    )
    .await?;
    Ok(Drained {
        rows,
        seconds,
        cpu_seconds: cpu,
        peak_rss_mb: rss,
        server_cpu_seconds: server_cpu,
        latency: progress.latency(),
    })
}

/// Reads `topic` from its start, counting each row record and its commit → seen delay,
/// until nothing arrives for 30 s.
fn read_latencies(topic: &str, progress: &Arc<Progress>) {
    let Ok(consumer) = consumer() else { return };
    if consumer.subscribe(&[topic]).is_err() {
        return;
    }
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(30) {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        quiet_since = Instant::now();
        let now = outflow_core::now_us();
        let Some(value) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
        else {
            continue;
        };
        let commit = &value["payload"]["source"]["ts_us"];
        let delays: Vec<i64> = commit.as_i64().map(|t| now - t).into_iter().collect();
        progress.observed(1, &delays);
    }
}
