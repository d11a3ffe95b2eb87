//! A Debezium Postgres connector submitted over the REST API runs in the daemon and
//! publishes to Kafka; it comes back after `kill -9` and resumes without loss or repeat.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use outflow_testkit::{broker, postgres, unique_name, wait_for};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test: `OUTFLOW_BIN` (the release build scripts/test.sh makes) or
/// this profile's build.
pub(crate) fn binary() -> std::path::PathBuf {
    std::env::var_os("OUTFLOW_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_outflow")),
        std::path::PathBuf::from,
    )
}

pub(crate) fn start(data: &std::path::Path, port: u16) -> Daemon {
    let servers = broker().bootstrap_servers();
    start_with(
        data,
        port,
        &[
            ("OUTFLOW_SINK", "kafka"),
            ("OUTFLOW_CONVERTER", "json"),
            ("OUTFLOW_KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
        ],
    )
}

/// Starts the daemon with `env` on top of the data dir and listen address; with no
/// other settings it runs the embedded default (the lake in `<data>/lake`).
pub(crate) fn start_with(data: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("outflow.log"))
        .unwrap();
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .env("OUTFLOW_REST_LISTEN", format!("127.0.0.1:{port}"))
        .env("OUTFLOW_DATA_DIR", data)
        .env("RUST_LOG", "info")
        .current_dir(data)
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

pub(crate) async fn up(daemon: &Daemon) {
    let client = reqwest::Client::new();
    let ok = wait_for(Duration::from_secs(30), || {
        let request = client.get(format!("{}/health", daemon.base)).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    assert!(ok, "the daemon did not come up");
}

/// A read_committed consumer of the lab broker's `topic` (partition 0) from its start.
pub(crate) fn consumer_from_start(topic: &str) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker().bootstrap_servers())
        .set("group.id", unique_name("e2e"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    for (k, v) in outflow_testkit::CONSUMER_SETTINGS {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

/// Every record of `topic` (read after the writers are done; see docs/testing.md).
pub(crate) fn read_topic(topic: &str, at_least: usize) -> Vec<Value> {
    let consumer = consumer_from_start(topic);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < at_least && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100))
            && let Some(payload) = message.payload()
        {
            out.push(serde_json::from_slice(payload).unwrap());
        }
    }
    out
}

/// One change as the sink holds it: (op, key, value after).
pub(crate) type Change = (String, i64, Option<i64>);

/// The lake's changes of `topic` (`key` and `value` columns, integers): visible files
/// in position order, read with the `apache-avro` crate.
pub(crate) fn lake_changes(
    root: &std::path::Path,
    topic: &str,
    key: &str,
    value: &str,
) -> Vec<Change> {
    let mut files: Vec<std::path::PathBuf> = outflow_lake::layout::walk(&root.join(topic))
        .unwrap()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    let first_token = |p: &std::path::PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('+').nth(1))
            .unwrap_or_default()
            .to_owned()
    };
    files.sort_by_key(first_token);
    let mut out = Vec::new();
    for file in files {
        let reader = apache_avro::Reader::new(std::fs::File::open(&file).unwrap()).unwrap();
        for record in reader {
            out.extend(envelope_change(&record.unwrap(), key, value));
        }
    }
    out
}

/// A Debezium envelope record (Avro) as a change: its `op`, the integer `key` column of
/// the image (`before` for deletes) and, except for deletes, the integer `value` column.
pub(crate) fn envelope_change(
    record: &apache_avro::types::Value,
    key: &str,
    value: &str,
) -> Option<Change> {
    use apache_avro::types::Value as Avro;
    let unwrap = |v: &Avro| match v {
        Avro::Union(_, inner) => (**inner).clone(),
        other => other.clone(),
    };
    let get = |v: &Avro, name: &str| match unwrap(v) {
        Avro::Record(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| unwrap(v)),
        _ => None,
    };
    let int = |v: Option<Avro>| match v {
        Some(Avro::Int(i)) => Some(i64::from(i)),
        Some(Avro::Long(i)) => Some(i),
        _ => None,
    };
    let Some(Avro::String(op)) = get(record, "op") else {
        return None;
    };
    let image = get(record, if op == "d" { "before" } else { "after" })?;
    let k = int(get(&image, key))?;
    let value = if op == "d" {
        None
    } else {
        int(get(&image, value))
    };
    Some((op, k, value))
}

/// A small client of the daemon's REST API.
pub(crate) struct Api {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
}

impl Api {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    pub(crate) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    /// Status code and JSON body (null when there is none).
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let code = response.status().as_u16();
        (code, response.json().await.unwrap_or_default())
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// Waits up to `seconds` until the connector's stored offset satisfies `done`.
    pub(crate) async fn wait_offset(
        &self,
        path: &str,
        seconds: u64,
        done: impl Fn(&Value) -> bool,
    ) -> bool {
        let done = &done;
        wait_for(Duration::from_secs(seconds), || async move {
            let request = self.client.get(format!("{}{path}", self.base)).send();
            let Ok(response) = request.await else {
                return false;
            };
            let body: Value = response.json().await.unwrap_or_default();
            done(&body["offsets"][0]["offset"])
        })
        .await
    }
}

/// The stored offset is past the snapshot.
pub(crate) fn snapshot_finished(offset: &Value) -> bool {
    offset["lsn"].is_u64() && offset.get("snapshot").is_none()
}

/// The stored offset is a transaction committed after `lsn`.
pub(crate) fn committed_after(offset: &Value, lsn: u64) -> bool {
    offset["lsn_commit"].as_u64().is_some_and(|c| c > lsn)
}

pub(crate) async fn wal_lsn(admin: &tokio_postgres::Client) -> u64 {
    let text: String = admin
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debezium_postgres_connector_runs_to_kafka_and_survives_kill_9() {
    let _shared = crate::BROKER.read().await;
    let db = postgres().create_database("e2e").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, item text);
             INSERT INTO orders SELECT i, 'item' || i FROM generate_series(1, 100) i;
             CREATE ROLE outflow_e2e LOGIN REPLICATION SUPERUSER PASSWORD 'hunter2-secret';",
        )
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon = start(data.path(), port);
    up(&daemon).await;
    let prefix = unique_name("e2e");
    let connector = json!({
        "name": "inventory-connector",
        "config": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.port": db.server().port(),
            "database.user": "outflow_e2e",
            "database.password": "hunter2-secret",
            "database.dbname": db.name(),
            "topic.prefix": prefix,
            "slot.name": db.name(),
            "plugin.name": "pgoutput",
            "table.include.list": "public.orders",
        }
    });

    // Errors first: a bad property is a 400 naming it; unknown names are 404.
    let api = Api::new(&daemon.base);
    let mut bad = connector.clone();
    bad["config"]["snapshot.mode"] = json!("sometimes");
    let (code, body) = api.send(api.post("/connectors").json(&bad)).await;
    assert_eq!((code, &body["error_code"]), (400, &json!(400)));
    assert!(
        body["message"].as_str().unwrap().contains("snapshot.mode"),
        "{body}"
    );
    let (code, _) = api.send(api.post("/connectors").body("{not json")).await;
    assert_eq!(code, 400);
    assert_eq!(api.get("/connectors/nope/status").await.0, 404);

    // Create: 201, then 409 for the same name.
    let (code, created) = api.send(api.post("/connectors").json(&connector)).await;
    assert_eq!(code, 201);
    assert_eq!(created["name"], "inventory-connector");
    assert_eq!(created["config"]["database.password"], "********");
    let (code, _) = api.send(api.post("/connectors").json(&connector)).await;
    assert_eq!(code, 409);

    let status_path = "/connectors/inventory-connector/status";
    let (_, status) = api.get(status_path).await;
    assert_eq!(status["connector"]["state"], "RUNNING", "{status}");
    assert_eq!(status["type"], "source");
    assert_eq!(
        api.get("/connectors").await.1,
        json!(["inventory-connector"])
    );
    let (_, tasks) = api.get("/connectors/inventory-connector/tasks").await;
    assert_eq!(tasks[0]["id"]["connector"], "inventory-connector");
    assert_eq!(tasks[0]["config"]["database.password"], "********");
    // PUT config validates like POST: a bad property on a new name is a 400, and nothing
    // is created.
    let mut bad_config = connector["config"].clone();
    bad_config["snapshot.mode"] = json!("sometimes");
    let request = api
        .client
        .put(format!("{}/connectors/other/config", api.base));
    assert_eq!(api.send(request.json(&bad_config)).await.0, 400);
    assert_eq!(api.get("/connectors/other").await.0, 404);

    // The snapshot and a change, durable (the stored offset moves past the snapshot).
    let offsets_path = "/connectors/inventory-connector/offsets";
    assert!(
        api.wait_offset(offsets_path, 60, snapshot_finished).await,
        "the snapshot did not become durable"
    );
    admin
        .batch_execute("INSERT INTO orders VALUES (101, 'streamed')")
        .await
        .unwrap();

    // kill -9 at a random moment of streaming, write while down, start again.
    let writer = db.connect().await;
    let writes = tokio::spawn(async move {
        for i in 102..=600 {
            writer
                .batch_execute(&format!("INSERT INTO orders VALUES ({i}, 'during')"))
                .await
                .unwrap();
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut daemon = daemon;
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    writes.await.unwrap();
    let daemon = start(data.path(), port);
    up(&daemon).await;
    let before_last = wal_lsn(&admin).await;
    admin
        .batch_execute("INSERT INTO orders VALUES (-1, 'last'); UPDATE orders SET item = 'changed' WHERE id = 1; DELETE FROM orders WHERE id = 2")
        .await
        .unwrap();
    let api = Api::new(&daemon.base);
    let (_, restored) = api.get(status_path).await;
    assert_eq!(restored["connector"]["state"], "RUNNING", "{restored}");

    // Wait until the last change is durable, then stop the daemon cleanly (SIGTERM).
    let topic = format!("{prefix}.public.orders");
    let expected = 100 + 1 + 499 + 1 + 1 + 1;
    assert!(
        api.wait_offset(offsets_path, 90, |o| committed_after(o, before_last))
            .await,
        "the last change did not become durable"
    );
    let mut daemon = daemon;
    sigterm(daemon.child.id());
    let _ = daemon.child.wait();

    let records = tokio::task::spawn_blocking(move || read_topic(&topic, expected))
        .await
        .unwrap();
    let mut per_id: BTreeMap<i64, usize> = BTreeMap::new();
    for record in &records {
        if let Some(id) = record["payload"]["after"]["id"].as_i64() {
            *per_id.entry(id).or_insert(0) += 1;
        }
    }
    let repeated: Vec<_> = per_id
        .iter()
        .filter(|(id, n)| **n > 1 && **id != 1)
        .collect();
    assert!(repeated.is_empty(), "repeated after kill -9: {repeated:?}");
    assert_eq!(per_id.len(), 100 + 1 + 499 + 1, "rows lost after kill -9");
    assert_eq!(per_id.get(&1), Some(&2), "row 1: read and update");

    // The password never reached a response or the log.
    let log = std::fs::read_to_string(data.path().join("outflow.log")).unwrap();
    assert!(!log.contains("hunter2-secret"), "secret in the log");
    assert!(log.contains("connector started"), "{log}");
}

/// SIGTERM through the `kill` tool (the workspace denies unsafe code).
pub(crate) fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_worker_writes_a_debezium_postgres_connector_to_the_lake() {
    let db = postgres().create_database("e2elake").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE stock (id int PRIMARY KEY, qty int);
             INSERT INTO stock SELECT i, i FROM generate_series(1, 50) i;",
        )
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    // No sink settings: the embedded default, Avro files under <data.dir>/lake. JSON logs.
    let daemon = start_with(data.path(), port, &[("OUTFLOW_LOG_FORMAT", "json")]);
    up(&daemon).await;
    let prefix = unique_name("e2elake");
    let api = Api::new(&daemon.base);
    let (code, _) = api
        .send(api.post("/connectors").json(&json!({
            "name": "stock-lake",
            "config": {
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "database.hostname": "127.0.0.1",
                "database.port": db.server().port(),
                "database.user": "postgres",
                "database.dbname": db.name(),
                "topic.prefix": prefix,
                "slot.name": db.name(),
                "flush.interval.ms": "200",
            }
        })))
        .await;
    assert_eq!(code, 201);
    // A lake property with a bad value is a 400 naming it.
    let (code, body) = api
        .send(api.post("/connectors").json(&json!({
            "name": "bad-lake",
            "config": {
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "database.hostname": "127.0.0.1",
                "database.user": "postgres",
                "database.dbname": db.name(),
                "topic.prefix": "x",
                "lake.compression": "lz4",
            }
        })))
        .await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("lake.compression"),
        "{body}"
    );

    let offsets_path = "/connectors/stock-lake/offsets";
    assert!(
        api.wait_offset(offsets_path, 60, snapshot_finished).await,
        "the snapshot did not become durable"
    );
    let before_last = wal_lsn(&admin).await;
    admin
        .batch_execute(
            "INSERT INTO stock VALUES (51, 5100);
             UPDATE stock SET qty = 0 WHERE id = 1;
             DELETE FROM stock WHERE id = 2;",
        )
        .await
        .unwrap();
    assert!(
        api.wait_offset(offsets_path, 60, |o| committed_after(o, before_last))
            .await,
        "the changes did not become durable"
    );
    // Metrics: per table and operation, lake files, in Prometheus text.
    let response = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let metrics = response.text().await.unwrap();
    for (op, n) in [("r", 50), ("c", 1), ("u", 1), ("d", 1)] {
        let line = format!(
            "outflow_table_events_total{{connector=\"stock-lake\",table=\"public.stock\",op=\"{op}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    assert!(metrics.contains("outflow_connector_up{connector=\"stock-lake\",state=\"RUNNING\"} 1"));
    let files: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("outflow_lake_files_committed_total{connector=\"stock-lake\"} ")
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(files >= 1.0, "{metrics}");

    // Topics, and KIP-875 offsets: alter only while STOPPED.
    let (code, topics) = api.get("/connectors/stock-lake/topics").await;
    assert_eq!(code, 200);
    assert_eq!(
        topics,
        json!({"stock-lake": {"topics": [format!("{prefix}.public.stock")]}})
    );
    let (_, stored) = api.get(offsets_path).await;
    let patch = |body: &Value| {
        api.client
            .patch(format!("{}{offsets_path}", api.base))
            .json(body)
    };
    let (code, body) = api.send(patch(&stored)).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("STOPPED"));
    let stop = api
        .client
        .put(format!("{}/connectors/stock-lake/stop", api.base));
    assert_eq!(api.send(stop).await.0, 202);
    let (code, body) = api.send(patch(&stored)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(api.get(offsets_path).await.1, stored);
    let mut wrong = stored.clone();
    wrong["offsets"][0]["offset"] = json!({"nonsense": true});
    assert_eq!(api.send(patch(&wrong)).await.0, 400);
    let mut wrong = stored.clone();
    wrong["offsets"][0]["partition"]["server"] = json!("elsewhere");
    assert_eq!(api.send(patch(&wrong)).await.0, 400);
    let mut reset = stored.clone();
    reset["offsets"][0]["offset"] = Value::Null;
    assert_eq!(api.send(patch(&reset)).await.0, 200);
    assert_eq!(api.get(offsets_path).await.1, json!({"offsets": []}));

    let mut daemon = daemon;
    sigterm(daemon.child.id());
    let _ = daemon.child.wait();
    // OUTFLOW_LOG_FORMAT=json: every log line is a JSON object with a level and message.
    let log = std::fs::read_to_string(data.path().join("outflow.log")).unwrap();
    assert!(log.lines().count() > 3);
    for line in log.lines() {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"]["message"].is_string(),
            "{line}"
        );
    }

    let root = data.path().join("lake");
    let changes = lake_changes(&root, &format!("{prefix}.public.stock"), "id", "qty");
    assert_eq!(changes.len(), 53, "{changes:?}");
    assert!(changes[..50].iter().all(|(op, _, _)| op == "r"));
    assert_eq!(
        changes[50..].to_vec(),
        vec![
            ("c".to_owned(), 51, Some(5100)),
            ("u".to_owned(), 1, Some(0)),
            ("d".to_owned(), 2, None),
        ]
    );
    // The writer schema is copied next to the data.
    assert!(
        root.join("_schemas")
            .join(format!("{prefix}.public.stock"))
            .is_dir()
    );
}
