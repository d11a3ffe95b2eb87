//! Migration from a running Debezium connector (`outflow migrate`): Debezium 3.6 on the
//! lab's Kafka Connect worker snapshots a table and streams it under continuing writes;
//! the command stops it, takes its offsets and creates the connector on outflow, which
//! continues on the same slot or binlog position, into the same topic, with no snapshot,
//! while the writes go on.
//!
//! A read_committed consumer of the topic then sees every change at least once; the
//! records after the hand-over (outflow's, told apart by its `outflow.position` header)
//! hold each change once and in order; the changes both wrote (Debezium had produced them
//! but not committed their offsets) are counted and bounded.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use outflow_testkit::{
    CDC_PASSWORD, CDC_USER, broker, debezium, debezium_connector_class, mariadb, postgres,
    unique_name, wait_for,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message};
use serde_json::{Value, json};

use crate::connectors::{binary, consumer_from_start, free_port, start, up};
use crate::debezium_oracle::start_debezium;

/// One record of the topic: the row's id, its op, and whether outflow wrote it.
#[derive(Debug, Clone)]
struct Seen {
    id: u64,
    op: char,
    by_outflow: bool,
    /// Where the change stands in the database's log, for failure messages.
    source: String,
}

/// Every committed record of `topic` up to its end now (read_committed).
fn whole_topic(topic: &str) -> Vec<Seen> {
    let consumer: BaseConsumer = consumer_from_start(topic);
    let Ok((_, high)) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(10)) else {
        return Vec::new(); // not created yet
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    let mut next = 0;
    while next < high && std::time::Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            // Transaction markers occupy offsets that are never delivered.
            if let Ok(position) = consumer.position()
                && let Some(p) = position.elements().first()
                && let rdkafka::Offset::Offset(o) = p.offset()
            {
                next = next.max(o);
            }
            continue;
        };
        next = message.offset() + 1;
        let Some(payload) = message.payload() else {
            continue; // a tombstone
        };
        let value: Value = serde_json::from_slice(payload).unwrap();
        let payload = &value["payload"];
        let row = if payload["after"].is_null() {
            &payload["before"]
        } else {
            &payload["after"]
        };
        let by_outflow = message
            .headers()
            .is_some_and(|h| h.iter().any(|h| h.key == "outflow.position"));
        out.push(Seen {
            id: row["id"].as_u64().unwrap(),
            op: payload["op"].as_str().unwrap().chars().next().unwrap(),
            by_outflow,
            source: ["lsn", "txId", "sequence", "file", "pos", "row", "gtid"]
                .iter()
                .filter(|k| !payload["source"][**k].is_null())
                .map(|k| format!("{k}={}", payload["source"][*k]))
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    out
}

/// How the records of one topic split at the hand-over, and what that proves; panics
/// with counts and the first few ids when a change is missing or repeated after it.
fn check_handover(records: &[Seen], snapshot_rows: u64, written: u64) -> usize {
    let first_ours = records
        .iter()
        .position(|r| r.by_outflow)
        .expect("outflow wrote nothing after the hand-over");
    let (theirs, ours) = records.split_at(first_ours);
    assert!(
        ours.iter().all(|r| r.by_outflow),
        "Debezium wrote after outflow took over"
    );
    assert!(
        ours.iter().all(|r| r.op == 'c'),
        "outflow snapshotted again: {} read records after the hand-over",
        ours.iter().filter(|r| r.op == 'r').count()
    );
    assert_eq!(
        theirs.iter().filter(|r| r.op == 'r').count() as u64,
        snapshot_rows,
        "Debezium's snapshot"
    );
    let all: BTreeSet<u64> = records.iter().map(|r| r.id).collect();
    let missing: Vec<u64> = (1..=written).filter(|id| !all.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {written} changes never reached the topic, the first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let ours_ids: Vec<u64> = ours.iter().map(|r| r.id).collect();
    let out_of_order: Vec<&[u64]> = ours_ids.windows(2).filter(|w| w[0] >= w[1]).collect();
    assert!(
        out_of_order.is_empty(),
        "after the hand-over {} changes repeat or come out of order, the first: {:?}",
        out_of_order.len(),
        &out_of_order[..out_of_order.len().min(5)]
    );
    let theirs_ids: BTreeSet<u64> = theirs.iter().map(|r| r.id).collect();
    let repeated: Vec<&Seen> = ours.iter().filter(|r| theirs_ids.contains(&r.id)).collect();
    eprintln!(
        "hand-over: Debezium wrote {} records, outflow {}; {} changes written by both",
        theirs.len(),
        ours.len(),
        repeated.len()
    );
    for again in repeated.iter().take(3) {
        let first = theirs.iter().find(|r| r.id == again.id);
        eprintln!(
            "  id {}: Debezium at {}, outflow at {}",
            again.id,
            first.map_or("?", |r| r.source.as_str()),
            again.source
        );
    }
    if let Some(last) = theirs.last() {
        eprintln!(
            "  Debezium's last record: id {} at {}",
            last.id, last.source
        );
    }
    repeated.len()
}

/// Waits until `topic` holds `count` records: Debezium's snapshot is read before the
/// writes start, so every later change is a streamed one.
async fn wait_for_records(topic: &str, count: u64) {
    let topic = topic.to_owned();
    let done = wait_for(Duration::from_secs(120), || {
        let topic = topic.clone();
        async move {
            tokio::task::spawn_blocking(move || whole_topic(&topic).len() as u64 >= count)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(done, "Debezium's snapshot did not reach its topic");
}

/// Runs `outflow migrate --from <worker> --connector <name> --to <outflow>`; its stdout.
async fn migrate_command(connector: &str, outflow: &str) -> String {
    let args = [
        "migrate".to_owned(),
        "--from".to_owned(),
        debezium().url(),
        "--connector".to_owned(),
        connector.to_owned(),
        "--to".to_owned(),
        outflow.to_owned(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(binary())
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "outflow migrate failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A writer of one-row transactions (ids from `first`), running until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start<F, Fut>(first: u64, mut insert: F) -> Self
    where
        F: FnMut(u64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(first));
        let task = tokio::spawn({
            let (stop, next) = (stop.clone(), next.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    let id = next.load(Ordering::SeqCst);
                    insert(id).await;
                    next.store(id + 1, Ordering::SeqCst);
                    // Paces the load, a few hundred changes a second.
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }
        });
        Self { stop, next, task }
    }

    /// Ids written so far (the last one is `written()`).
    fn written(&self) -> u64 {
        self.next.load(Ordering::SeqCst) - 1
    }

    /// Waits until `more` further changes were written.
    async fn wait_for_more(&self, more: u64) {
        let target = self.written() + more;
        assert!(
            wait_for(Duration::from_secs(60), || async {
                self.written() >= target
            })
            .await,
            "the writer stalled at {}",
            self.written()
        );
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        self.next.load(Ordering::SeqCst) - 1
    }
}

/// Waits until `topic` holds every id up to `written` (read_committed).
async fn wait_for_all(topic: &str, written: u64, outflow: &crate::connectors::Api, name: &str) {
    let topic = topic.to_owned();
    let complete = wait_for(Duration::from_secs(120), || {
        let topic = topic.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let ids: BTreeSet<u64> = whole_topic(&topic).iter().map(|r| r.id).collect();
                ids.len() as u64 >= written
            })
            .await
            .unwrap()
        }
    })
    .await;
    if !complete {
        let (_, status) = outflow.get(&format!("/connectors/{name}/status")).await;
        panic!("the topic never held all {written} changes; outflow's status {status}");
    }
}

/// The hand-over under `writer`'s load: a fresh outflow daemon, `outflow migrate` of
/// Debezium's `name`, 200 more changes, then the checks on `topic`: every change there,
/// outflow's records once each and in order, none written by both (Kafka Connect commits
/// a stopped task's offsets after its last records). Returns the command's output.
async fn hand_over(writer: Writer, name: &str, topic: &str, snapshot_rows: u64) -> String {
    let data = tempfile::tempdir().unwrap();
    let daemon = start(data.path(), free_port());
    up(&daemon).await;
    let stdout = migrate_command(name, &daemon.base).await;
    eprintln!("{stdout}");
    writer.wait_for_more(200).await;
    let written = writer.finish().await;
    let api = crate::connectors::Api::new(&daemon.base);
    wait_for_all(topic, written, &api, name).await;
    let owned = topic.to_owned();
    let records = tokio::task::spawn_blocking(move || whole_topic(&owned))
        .await
        .unwrap();
    let repeated = check_handover(&records, snapshot_rows, written);
    assert_eq!(
        repeated, 0,
        "changes Debezium wrote that outflow wrote again"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connector_moves_from_debezium_without_a_snapshot() {
    let _shared = crate::BROKER.read().await;
    let db = postgres().create_database("migrate").await;
    let admin = db.connect().await;
    let user = format!("{}_cdc", db.name());
    let snapshot_rows = 50;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {user} LOGIN REPLICATION SUPERUSER PASSWORD 'migrate-secret';
             CREATE TABLE moves (id bigint PRIMARY KEY, note text);
             INSERT INTO moves SELECT i, 'before' FROM generate_series(1, {snapshot_rows}) i;"
        ))
        .await
        .unwrap();
    let prefix = unique_name("mig");
    let name = prefix.clone();
    let slot = format!("{}_slot", db.name());
    let config = json!({
        "connector.class": debezium_connector_class("postgres"),
        "database.hostname": "127.0.0.1",
        "database.port": db.server().port(),
        "database.user": user,
        "database.password": "migrate-secret",
        "database.dbname": db.name(),
        "topic.prefix": prefix,
        "slot.name": slot,
        "publication.name": format!("{}_pub", db.name()),
        "publication.autocreate.mode": "filtered",
        "plugin.name": "pgoutput",
        "table.include.list": "public.moves",
    });
    start_debezium(&name, config).await;
    let topic = format!("{prefix}.public.moves");

    wait_for_records(&topic, snapshot_rows).await;
    let writer_db = Arc::new(db.connect().await);
    let writer = Writer::start(snapshot_rows + 1, move |id| {
        let statement = format!("INSERT INTO moves VALUES ({id}, 'streamed')");
        let client = writer_db.clone();
        async move { client.batch_execute(&statement).await.unwrap() }
    });
    writer.wait_for_more(200).await;

    let stdout = hand_over(writer, &name, &topic, snapshot_rows).await;
    assert!(stdout.contains("slot.adopt.existing=true"), "{stdout}");
    // outflow streams from Debezium's slot and made none of its own.
    let slots: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 1, "outflow made a slot of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_connector_moves_from_debezium_without_a_snapshot() {
    let _shared = crate::BROKER.read().await;
    let db = mariadb().create_database("migrate").await;
    let mut conn = db.connect().await;
    let snapshot_rows = 50u64;
    conn.query_drop("CREATE TABLE moves (id BIGINT PRIMARY KEY, note TEXT)")
        .await
        .unwrap();
    let values: Vec<String> = (1..=snapshot_rows)
        .map(|i| format!("({i}, 'before')"))
        .collect();
    conn.query_drop(format!("INSERT INTO moves VALUES {}", values.join(",")))
        .await
        .unwrap();
    let prefix = unique_name("migm");
    let name = prefix.clone();
    let config = json!({
        "connector.class": debezium_connector_class("mariadb"),
        "database.hostname": "127.0.0.1",
        "database.port": mariadb().port(),
        "database.user": CDC_USER,
        "database.password": CDC_PASSWORD,
        "database.server.id": 6201,
        "database.include.list": db.name(),
        "table.include.list": format!("{}.moves", db.name()),
        "topic.prefix": prefix,
        "schema.history.internal.kafka.bootstrap.servers": broker().bootstrap_servers(),
        "schema.history.internal.kafka.topic": format!("{prefix}.history"),
    });
    start_debezium(&name, config).await;
    let topic = format!("{prefix}.{}.moves", db.name());

    wait_for_records(&topic, snapshot_rows).await;
    let writer_conn = Arc::new(tokio::sync::Mutex::new(db.connect().await));
    let writer = Writer::start(snapshot_rows + 1, move |id| {
        let conn = writer_conn.clone();
        async move {
            conn.lock()
                .await
                .query_drop(format!("INSERT INTO moves VALUES ({id}, 'streamed')"))
                .await
                .unwrap();
        }
    });
    writer.wait_for_more(200).await;

    hand_over(writer, &name, &topic, snapshot_rows).await;
}
