//! The crash tests: a mixed insert/update/delete workload on 1,000 keys while the daemon
//! is SIGKILLed at 20 random moments and restarted; then every key's events in the sink
//! must equal its committed changes, in commit order: 0 lost, 0 duplicated. The Kafka run
//! also stops the broker (SIGSTOP) for 30 s; the lake run checks that no temporary file
//! is left and reads the files with the `apache-avro` crate.

use std::collections::BTreeMap;
use std::time::Duration;

use outflow_testkit::{broker, postgres, unique_name};
use serde_json::json;

use crate::connectors::{
    Api, Daemon, committed_after, free_port, lake_changes, read_topic, snapshot_finished, start,
    start_with, up, wal_lsn,
};

/// Which sink a crash run writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Kafka,
    Lake,
}

fn launch(target: Target, data: &std::path::Path, port: u16) -> Daemon {
    match target {
        Target::Kafka => start(data, port),
        Target::Lake => start_with(data, port, &[]),
    }
}

/// The Kafka topic's changes (JsonConverter with schemas).
fn kafka_changes(topic: &str, expected: usize) -> Vec<crate::connectors::Change> {
    read_topic(topic, expected)
        .iter()
        .filter_map(|record| {
            let payload = &record["payload"];
            let op = payload["op"].as_str().unwrap_or_default().to_owned();
            let image = if op == "d" {
                &payload["before"]
            } else {
                &payload["after"]
            };
            let k = image["k"].as_i64()?;
            let value = if op == "d" {
                None
            } else {
                payload["after"]["v"].as_i64()
            };
            Some((op, k, value))
        })
        .collect()
}

/// A tiny deterministic generator (xorshift), so a failure can be replayed by seed.
pub(crate) struct Random(pub(crate) u64);

impl Random {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times_and_a_broker_stop_lose_and_repeat_nothing() {
    let _alone = crate::BROKER.write().await;
    crash_run(Target::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times_writing_to_the_lake_loses_and_repeats_nothing() {
    crash_run(Target::Lake).await;
}

#[allow(clippy::print_stdout)] // The seed and the counts are the test's report.
async fn crash_run(target: Target) {
    let seed = std::env::var("OUTFLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    println!(
        "crash test seed {seed} (OUTFLOW_CRASH_SEED={seed} replays it), binary {}",
        crate::connectors::binary().display()
    );
    let db = postgres().create_database("crash").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);
             INSERT INTO kv SELECT k, 0 FROM generate_series(1, 1000) k;",
        )
        .await
        .unwrap();
    // The model: per key, the changes in commit order (snapshot read first).
    let mut model: BTreeMap<i64, Vec<(String, Option<i64>)>> = (1..=1000)
        .map(|k| (k, vec![("r".to_owned(), Some(0))]))
        .collect();
    let mut present: BTreeMap<i64, i64> = (1..=1000).map(|k| (k, 0)).collect();

    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut daemon = launch(target, data.path(), port);
    up(&daemon).await;
    let prefix = unique_name("crash");
    let api = Api::new(&daemon.base);
    let (code, _) = api
        .send(api.post("/connectors").json(&json!({
            "name": "crash",
            "config": {
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "database.hostname": "127.0.0.1",
                "database.port": db.server().port(),
                "database.user": "postgres",
                "database.dbname": db.name(),
                "topic.prefix": prefix,
                "slot.name": db.name(),
                "table.include.list": "public.kv",
                // Lake files roll at every checkpoint: many files, many crash points.
                "flush.interval.ms": "300",
            }
        })))
        .await;
    assert_eq!(code, 201);
    // The workload starts once the snapshot is durable (a stop inside the snapshot is
    // the Postgres tests' subject; here the streaming path is).
    let offsets_path = "/connectors/crash/offsets";
    assert!(
        api.wait_offset(offsets_path, 60, snapshot_finished).await,
        "the snapshot did not become durable"
    );

    // The workload runs in its own task, one change per transaction.
    let writer = db.connect().await;
    let mut random = Random(seed);
    let mut plan = Vec::new();
    for _ in 0..3000 {
        let k = i64::try_from(random.below(1000)).unwrap() + 1;
        let value = i64::try_from(random.below(1_000_000)).unwrap();
        match present.get(&k).copied() {
            Some(_) if random.below(4) == 0 => {
                plan.push(format!("DELETE FROM kv WHERE k = {k}"));
                present.remove(&k);
                model.entry(k).or_default().push(("d".into(), None));
            }
            Some(_) => {
                plan.push(format!("UPDATE kv SET v = {value} WHERE k = {k}"));
                present.insert(k, value);
                model.entry(k).or_default().push(("u".into(), Some(value)));
            }
            None => {
                plan.push(format!("INSERT INTO kv VALUES ({k}, {value})"));
                present.insert(k, value);
                model.entry(k).or_default().push(("c".into(), Some(value)));
            }
        }
    }
    let workload = tokio::spawn(async move {
        for statement in plan {
            writer.batch_execute(&statement).await.unwrap();
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    });

    // Twenty kills at random moments, each followed by a restart.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150 + random.below(500))).await;
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        daemon = launch(target, data.path(), port);
        up(&daemon).await;
    }
    if target == Target::Kafka {
        // The broker away for 30 s while changes go on.
        let broker_pid = broker().pid();
        signal(broker_pid, "-STOP");
        tokio::time::sleep(Duration::from_secs(30)).await;
        signal(broker_pid, "-CONT");
    }
    workload.await.unwrap();

    // Everything durable, then a clean stop.
    let before_last = wal_lsn(&admin).await;
    admin
        .batch_execute("UPDATE kv SET v = v WHERE k = (SELECT min(k) FROM kv)")
        .await
        .unwrap();
    let marker_key: i64 = admin
        .query_one("SELECT min(k)::int8 FROM kv", &[])
        .await
        .unwrap()
        .get(0);
    let marker_value = present[&marker_key];
    model
        .entry(marker_key)
        .or_default()
        .push(("u".into(), Some(marker_value)));
    let api = Api::new(&daemon.base);
    let durable = api
        .wait_offset(offsets_path, 180, |o| committed_after(o, before_last))
        .await;
    if !durable {
        let (_, status) = api.get("/connectors/crash/status").await;
        let log = std::fs::read_to_string(data.path().join("outflow.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "seed {seed}: the last change did not become durable; status {status}; log tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    signal(daemon.child.id(), "-TERM");
    let _ = daemon.child.wait();

    let expected: usize = model.values().map(Vec::len).sum();
    let topic = format!("{prefix}.public.kv");
    let records = match target {
        Target::Kafka => tokio::task::spawn_blocking(move || kafka_changes(&topic, expected))
            .await
            .unwrap(),
        Target::Lake => {
            let root = data.path().join("lake");
            let leftovers: Vec<_> = outflow_lake::layout::walk(&root)
                .unwrap()
                .into_iter()
                .filter(|p| p.to_string_lossy().ends_with(".tmp"))
                .collect();
            assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
            lake_changes(&root, &topic, "k", "v")
        }
    };
    let mut seen: BTreeMap<i64, Vec<(String, Option<i64>)>> = BTreeMap::new();
    for (op, k, value) in &records {
        seen.entry(*k).or_default().push((op.clone(), *value));
    }
    let mut lost = 0;
    let mut extra = 0;
    let mut wrong_order = Vec::new();
    for (k, changes) in &model {
        let got = seen.get(k).cloned().unwrap_or_default();
        lost += changes.len().saturating_sub(got.len());
        extra += got.len().saturating_sub(changes.len());
        if &got != changes && wrong_order.len() < 3 {
            wrong_order.push((k, changes.clone(), got));
        }
    }
    println!(
        "crash test ({target:?}): {} changes expected, {} records read, lost {lost}, duplicated {extra}",
        expected,
        records.len()
    );
    assert!(
        wrong_order.is_empty(),
        "seed {seed}: per-key changes differ (expected, got): {wrong_order:?}"
    );
    assert_eq!(records.len(), expected, "seed {seed}");
}
