//! TLS to the broker and the registry, the failures: a client without TLS gets nothing
//! from the TLS broker; a broker or registry certificate the worker does not trust stops
//! the connector FAILED with a message that names the setting to fix. (Events flowing
//! over mutual TLS, with kills, are a chaos scenario: `chaos::…_over_mutual_tls`.)

use std::time::Duration;

use outflow_testkit::{TestCertificates, postgres, unique_name, wait_for};
use serde_json::{Value, json};

use crate::chaos::tls_lab;
use crate::connectors::{Api, free_port, start_with, up};

/// Starts a daemon whose worker settings reach the TLS lab, with `replace` swapped in
/// (env var → value), submits a Postgres connector and returns the first status whose
/// state or trace satisfies `done` within 90 s (the last one seen otherwise).
async fn connector_status(replace: &[(&str, String)], done: impl Fn(&Value) -> bool) -> Value {
    let lab = tls_lab();
    let db = postgres().create_database("tls").await;
    db.connect()
        .await
        .batch_execute("CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 1);")
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (servers, url) = (lab.broker.bootstrap_servers(), lab.registry.url());
    let mut env: Vec<(String, String)> = vec![
        ("OUTFLOW_SINK".into(), "kafka".into()),
        ("OUTFLOW_CONVERTER".into(), "avro".into()),
        ("OUTFLOW_SCHEMA_REGISTRY_URL".into(), url),
        ("OUTFLOW_KAFKA_BOOTSTRAP_SERVERS".into(), servers),
    ];
    env.extend(lab.worker_env());
    for (key, value) in replace {
        env.retain(|(k, _)| k != key);
        env.push(((*key).to_owned(), value.clone()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let daemon = start_with(data.path(), port, &env);
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let (code, body) = api
        .send(api.post("/connectors").json(&json!({
            "name": "tls",
            "config": {
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "database.hostname": "127.0.0.1",
                "database.port": db.server().port(),
                "database.user": "postgres",
                "database.dbname": db.name(),
                "slot.name": db.name(),
                "topic.prefix": unique_name("tls"),
                "table.include.list": "public.kv",
            }
        })))
        .await;
    assert_eq!(code, 201, "{body}");
    let last = std::sync::Mutex::new(Value::Null);
    let seen = wait_for(Duration::from_secs(90), || async {
        let (_, status) = api.get("/connectors/tls/status").await;
        let hit = done(&status);
        *last.lock().unwrap() = status;
        hit
    })
    .await;
    let status = last.into_inner().unwrap();
    if !seen {
        let log = std::fs::read_to_string(data.path().join("outflow.log")).unwrap_or_default();
        panic!("status never matched: {status}; the daemon's log:\n{log}");
    }
    status
}

/// The connector's task FAILED with a trace that says all of `needles`.
fn failed_saying(status: &Value, needles: &[&str]) -> bool {
    let task = &status["tasks"][0];
    let trace = task["trace"].as_str().unwrap_or_default();
    task["state"] == "FAILED" && needles.iter().all(|n| trace.contains(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_broker_certificate_fails_the_connector_naming_the_setting() {
    let other = TestCertificates::new();
    let ca = other.ca().display().to_string();
    connector_status(&[("OUTFLOW_KAFKA_SSL_CA_LOCATION", ca)], |s| {
        failed_saying(s, &["certificate verify failed", "kafka.ssl.ca.location"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_the_broker_does_not_trust_fails_the_connector() {
    // A client certificate of another CA: the broker's side refuses the handshake with a
    // TLS alert after the client already thinks it is connected.
    let other = TestCertificates::new();
    let (cert, key) = other.client();
    connector_status(
        &[
            (
                "OUTFLOW_KAFKA_SSL_CERTIFICATE_LOCATION",
                cert.display().to_string(),
            ),
            ("OUTFLOW_KAFKA_SSL_KEY_LOCATION", key.display().to_string()),
        ],
        |s| failed_saying(s, &["kafka.ssl.certificate.location"]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_registry_certificate_fails_the_connector_naming_the_setting() {
    let other = TestCertificates::new();
    let ca = other.ca().display().to_string();
    connector_status(&[("OUTFLOW_SCHEMA_REGISTRY_SSL_CA_LOCATION", ca)], |s| {
        failed_saying(
            s,
            &[
                "certificate was not accepted",
                "schema.registry.ssl.ca.location",
            ],
        )
    })
    .await;
}

#[test]
fn a_client_without_tls_gets_nothing_from_the_tls_broker() {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let lab = tls_lab();
    let fetch = |tls: bool| {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", lab.broker.bootstrap_servers());
        if tls {
            for (k, v) in lab.broker.client_settings() {
                config.set(k, v);
            }
        }
        let consumer: BaseConsumer = config.create().unwrap();
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|m| m.brokers().len())
    };
    assert!(fetch(false).is_err(), "plain text reached the TLS broker");
    assert_eq!(fetch(true).unwrap(), 1);
}
