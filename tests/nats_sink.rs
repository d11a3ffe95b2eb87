//! The worker with `sink = "nats"`: a Debezium Postgres connector submitted over REST
//! lands in a JetStream stream, snapshot and stream, exactly once across `kill -9`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use outflow_testkit::{nats, postgres, unique_name, wait_for};
use serde_json::{Value, json};

use crate::connectors::{Api, free_port, start_with, up};

/// `after.id` of every message in `stream`, in stream order.
async fn ids_in(stream_name: &str) -> Vec<i64> {
    let client = async_nats::connect(nats().url()).await.unwrap();
    let Ok(mut stream) = jetstream::new(client).get_stream(stream_name).await else {
        return Vec::new();
    };
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut ids = Vec::new();
    for seq in 1..=last {
        if let Ok(message) = stream.get_raw_message(seq).await
            && let Ok(value) = serde_json::from_slice::<Value>(&message.payload)
            && let Some(id) = value["after"]["id"].as_i64()
        {
            ids.push(id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_connector_runs_to_nats_exactly_once_across_kill_9() {
    let db = postgres().create_database("e2enats").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, item text);
             INSERT INTO orders SELECT i, 'item' || i FROM generate_series(1, 100) i;",
        )
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = nats().url();
    let env = [
        ("OUTFLOW_SINK", "nats"),
        ("OUTFLOW_CONVERTER", "json"),
        ("OUTFLOW_NATS_URL", url.as_str()),
    ];
    let mut daemon = start_with(data.path(), port, &env);
    up(&daemon).await;
    let prefix = unique_name("e2enats");
    let name = unique_name("nats-connector");
    let connector = json!({
        "name": name,
        "config": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.port": db.server().port(),
            "database.user": "postgres",
            "database.dbname": db.name(),
            "topic.prefix": prefix,
            "slot.name": db.name(),
            "value.converter.schemas.enable": "false",
        }
    });
    let api = Api::new(&daemon.base);
    // A bad NATS property is a 400 naming it.
    let mut bad = connector.clone();
    bad["config"]["nats.max.in.flight"] = json!("many");
    let (code, body) = api.send(api.post("/connectors").json(&bad)).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nats.max.in.flight"),
        "{body}"
    );
    let (code, body) = api.send(api.post("/connectors").json(&connector)).await;
    assert_eq!(code, 201, "{body}");

    let stream = format!(
        "outflow-{}",
        name.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_"
        )
    );
    let snapshot = wait_for(Duration::from_secs(90), || async {
        ids_in(&stream).await.len() >= 100
    })
    .await;
    assert!(
        snapshot,
        "snapshot: {} of 100 in NATS",
        ids_in(&stream).await.len()
    );
    admin
        .batch_execute("INSERT INTO orders SELECT i, 'x' FROM generate_series(101, 3000) i")
        .await
        .unwrap();
    // Killed while the stream flows: whatever NATS stored but the offset did not yet
    // record is resent after the restart and must not appear twice.
    let flowing = wait_for(Duration::from_secs(90), || async {
        ids_in(&stream).await.len() > 150
    })
    .await;
    assert!(flowing, "streaming did not start");
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    admin
        .batch_execute("INSERT INTO orders VALUES (-1, 'last')")
        .await
        .unwrap();
    let daemon = start_with(data.path(), port, &env);
    up(&daemon).await;
    let done = wait_for(Duration::from_secs(120), || async {
        ids_in(&stream).await.contains(&-1)
    })
    .await;
    let ids = ids_in(&stream).await;
    assert!(done, "the last row did not arrive: {} messages", ids.len());
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for id in &ids {
        *seen.entry(*id).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "repeated (first 5): {repeated:?}");
    assert_eq!(seen.len(), 3001, "every row once");
    // The sink's own counters are on /metrics (since this daemon started: at least the
    // last row was published by it).
    let metrics = reqwest::get(format!("{}/metrics", daemon.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let published = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "outflow_nats_messages_published_total{{connector=\"{name}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        published.is_some_and(|n| n >= 1.0),
        "outflow_nats_messages_published_total: {published:?}"
    );
    drop(daemon);
}
