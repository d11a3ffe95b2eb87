//! Debezium MariaDB connectors through the daemon, into the lake with the default worker
//! config and into Kafka as Avro through the schema registry; and a Postgres connector
//! into Kafka as Avro (its lake path is in `connectors.rs`).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use outflow_testkit::{CDC_PASSWORD, CDC_USER, broker, mariadb, registry, unique_name, wait_for};
use rdkafka::message::Message;
use serde_json::json;

use crate::connectors::{Api, free_port, lake_changes, sigterm, start_with, up};

fn connector(name: &str, database: &str, prefix: &str, server_id: u32) -> serde_json::Value {
    json!({
        "name": name,
        "config": {
            "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
            "database.hostname": "127.0.0.1",
            "database.port": mariadb().port(),
            "database.user": CDC_USER,
            "database.password": CDC_PASSWORD,
            "database.server.id": server_id,
            "database.include.list": database,
            "topic.prefix": prefix,
            "flush.interval.ms": "200",
        }
    })
}

/// Waits until the connector's durable table events reach `ops` (op, count) pairs.
async fn wait_durable(api: &Api, connector: &str, table: &str, ops: &[(&str, u32)]) -> String {
    let last = std::sync::Mutex::new(String::new());
    let done = wait_for(Duration::from_secs(60), || {
        let request = api.client.get(format!("{}/metrics", api.base)).send();
        let last = &last;
        async move {
            let Ok(response) = request.await else { return false };
            let text = response.text().await.unwrap_or_default();
            let all = ops.iter().all(|(op, n)| {
                text.contains(&format!(
                    "outflow_table_events_total{{connector=\"{connector}\",table=\"{table}\",op=\"{op}\"}} {n}\n"
                ))
            });
            *last.lock().unwrap() = text;
            all
        }
    })
    .await;
    let text = last.into_inner().unwrap();
    assert!(done, "not durable: {ops:?}\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debezium_mariadb_connector_runs_to_the_lake() {
    let db = mariadb().create_database("e2emaria").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE stock (id INT PRIMARY KEY, qty INT NOT NULL);
         INSERT INTO stock VALUES (1, 10), (2, 20), (3, 30);",
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let daemon = start_with(data.path(), free_port(), &[]);
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let prefix = unique_name("maria");
    let (code, body) = api
        .send(
            api.post("/connectors")
                .json(&connector("maria-lake", db.name(), &prefix, 5501)),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["config"]["database.password"], "********");
    let table = format!("{}.stock", db.name());
    wait_durable(&api, "maria-lake", &table, &[("r", 3)]).await;
    conn.query_drop(
        "INSERT INTO stock VALUES (4, 40); UPDATE stock SET qty = 11 WHERE id = 1; DELETE FROM stock WHERE id = 2;",
    )
    .await
    .unwrap();
    wait_durable(
        &api,
        "maria-lake",
        &table,
        &[("r", 3), ("c", 1), ("u", 1), ("d", 1)],
    )
    .await;
    // The stored offset is Debezium's MySQL shape.
    let (_, offsets) = api.get("/connectors/maria-lake/offsets").await;
    let offset = &offsets["offsets"][0];
    assert_eq!(offset["partition"]["server"], prefix.as_str());
    assert!(
        offset["offset"]["file"].is_string() && offset["offset"]["pos"].is_u64(),
        "{offsets}"
    );
    let mut daemon = daemon;
    sigterm(daemon.child.id());
    let _ = daemon.child.wait();
    let changes = lake_changes(
        &data.path().join("lake"),
        &format!("{prefix}.{}.stock", db.name()),
        "id",
        "qty",
    );
    let expected: Vec<(String, i64, Option<i64>)> = vec![
        ("r".into(), 1, Some(10)),
        ("r".into(), 2, Some(20)),
        ("r".into(), 3, Some(30)),
        ("c".into(), 4, Some(40)),
        ("u".into(), 1, Some(11)),
        ("d".into(), 2, None),
    ];
    assert_eq!(changes, expected);
}

/// Every record value of `topic` (raw bytes), read after the writer is done.
fn raw_values(topic: &str, expected: usize) -> Vec<Vec<u8>> {
    let consumer = crate::connectors::consumer_from_start(topic);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100))
            && let Some(payload) = message.payload()
        {
            out.push(payload.to_vec());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debezium_mariadb_connector_runs_to_kafka_in_avro() {
    let _shared = crate::BROKER.read().await;
    let db = mariadb().create_database("e2emariak").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE stock (id INT PRIMARY KEY, qty INT NOT NULL); INSERT INTO stock VALUES (1, 10);")
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let servers = broker().bootstrap_servers();
    let registry_url = registry().url();
    let daemon = start_with(
        data.path(),
        free_port(),
        &[
            ("OUTFLOW_SINK", "kafka"),
            ("OUTFLOW_KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
            ("OUTFLOW_SCHEMA_REGISTRY_URL", registry_url.as_str()),
        ],
    );
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let prefix = unique_name("mariak");
    let (code, body) = api
        .send(
            api.post("/connectors")
                .json(&connector("maria-kafka", db.name(), &prefix, 5502)),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let table = format!("{}.stock", db.name());
    wait_durable(&api, "maria-kafka", &table, &[("r", 1)]).await;
    conn.query_drop("INSERT INTO stock VALUES (2, 20); UPDATE stock SET qty = 11 WHERE id = 1;")
        .await
        .unwrap();
    wait_durable(&api, "maria-kafka", &table, &[("r", 1), ("c", 1), ("u", 1)]).await;
    let mut daemon = daemon;
    sigterm(daemon.child.id());
    let _ = daemon.child.wait();
    let topic = format!("{prefix}.{}.stock", db.name());
    let t = topic.clone();
    let values = tokio::task::spawn_blocking(move || raw_values(&t, 3))
        .await
        .unwrap();
    assert_eq!(values.len(), 3);
    // Confluent framing: magic byte 0 and a registered schema id.
    assert!(values.iter().all(|v| v.len() > 5 && v[0] == 0));
    let subjects: Vec<String> = reqwest::get(format!("{registry_url}/subjects"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(subjects.contains(&format!("{topic}-value")), "{subjects:?}");
    assert!(subjects.contains(&format!("{topic}-key")), "{subjects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debezium_postgres_connector_runs_to_kafka_in_avro() {
    let _shared = crate::BROKER.read().await;
    let db = outflow_testkit::postgres()
        .create_database("e2epgavro")
        .await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE stock (id int PRIMARY KEY, qty int NOT NULL); INSERT INTO stock VALUES (1, 10);")
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let servers = broker().bootstrap_servers();
    let registry_url = registry().url();
    let daemon = start_with(
        data.path(),
        free_port(),
        &[
            ("OUTFLOW_SINK", "kafka"),
            ("OUTFLOW_KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
            ("OUTFLOW_SCHEMA_REGISTRY_URL", registry_url.as_str()),
        ],
    );
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let prefix = unique_name("pgavro");
    let (code, body) = api
        .send(
            api.post("/connectors")
                .json(&json!({"name": "pg-avro", "config": {
                    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                    "database.hostname": "127.0.0.1",
                    "database.port": db.server().port(),
                    "database.user": "postgres",
                    "database.dbname": db.name(),
                    "topic.prefix": prefix,
                    "slot.name": db.name(),
                }})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    wait_durable(&api, "pg-avro", "public.stock", &[("r", 1)]).await;
    admin
        .batch_execute("INSERT INTO stock VALUES (2, 20); UPDATE stock SET qty = 11 WHERE id = 1; DELETE FROM stock WHERE id = 2;")
        .await
        .unwrap();
    wait_durable(
        &api,
        "pg-avro",
        "public.stock",
        &[("r", 1), ("c", 1), ("u", 1), ("d", 1)],
    )
    .await;
    let mut daemon = daemon;
    sigterm(daemon.child.id());
    let _ = daemon.child.wait();
    let topic = format!("{prefix}.public.stock");
    let t = topic.clone();
    // r, c, u, d (the delete's tombstone has no value).
    let values = tokio::task::spawn_blocking(move || raw_values(&t, 4))
        .await
        .unwrap();
    assert_eq!(values.len(), 4);
    assert!(
        values
            .iter()
            .filter(|v| !v.is_empty())
            .all(|v| v.len() > 5 && v[0] == 0)
    );
    let subjects: Vec<String> = reqwest::get(format!("{registry_url}/subjects"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(subjects.contains(&format!("{topic}-value")), "{subjects:?}");
}
