//! Secrets never leave the daemon: a worker with REST basic auth runs a connector whose
//! database password is real (SCRAM) and whose registry credentials are set, plus a
//! connector with a wrong password that fails; every REST response (bodies and headers),
//! the metrics page and the daemon's log at `trace` level are scanned for each secret.

use std::time::Duration;

use outflow_testkit::{postgres, unique_name, wait_for};
use serde_json::{Value, json};

use crate::connectors::{free_port, sigterm, start_with};

const REST_PASSWORD: &str = "rest-S3cret-q7Zx";
const DB_PASSWORD: &str = "db-S3cret-k2Wv";
const WRONG_PASSWORD: &str = "wrong-S3cret-p9Lm";
const REGISTRY_PASSWORD: &str = "registry-S3cret-f4Hd";

/// Everything the API answered, for the scan.
#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    async fn call(&mut self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request
            .basic_auth("admin", Some(REST_PASSWORD))
            .send()
            .await
            .unwrap();
        let code = response.status().as_u16();
        for (name, value) in response.headers() {
            self.0
                .push(format!("{name}: {}", value.to_str().unwrap_or_default()));
        }
        let text = response.text().await.unwrap_or_default();
        self.0.push(text.clone());
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_response_the_metrics_or_the_log() {
    let db = postgres().create_database("secrets").await;
    let admin = db.connect().await;
    // pg_hba.conf checks this user's password (SCRAM); other users are trusted.
    let role = outflow_testkit::PASSWORD_USERS[1];
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN REPLICATION SUPERUSER PASSWORD '{DB_PASSWORD}';
             CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t VALUES (1, 'a'), (2, 'b');"
        ))
        .await
        .unwrap();

    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut daemon = start_with(
        data.path(),
        port,
        &[
            ("RUST_LOG", "trace"),
            ("OUTFLOW_REST_AUTH", "basic"),
            ("OUTFLOW_REST_USERNAME", "admin"),
            ("OUTFLOW_REST_PASSWORD", REST_PASSWORD),
        ],
    );
    let base = daemon.base.clone();
    let client = reqwest::Client::new();
    let up = wait_for(Duration::from_secs(30), || {
        let request = client.get(format!("{base}/health")).send();
        async move { request.await.is_ok() }
    })
    .await;
    assert!(up, "the daemon did not come up");
    let mut api = Transcript::default();

    // Without credentials: 401, and the challenge names no secret.
    let response = client
        .get(format!("{base}/connectors"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    api.0.push(format!("{:?}", response.headers()));
    api.0.push(response.text().await.unwrap_or_default());

    let config = |password: &str, slot: &str| {
        json!({
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.port": db.server().port(),
            "database.user": role,
            "database.password": password,
            "database.dbname": db.name(),
            "topic.prefix": unique_name("secrets"),
            "slot.name": slot,
            "table.include.list": "public.t",
            "value.converter.basic.auth.credentials.source": "USER_INFO",
            "value.converter.basic.auth.user.info": format!("registry-user:{REGISTRY_PASSWORD}"),
        })
    };
    let good_slot = unique_name("secrets_ok");
    let (code, body) = api
        .call(client.post(format!("{base}/connectors")).json(&json!({
            "name": "good",
            "config": config(DB_PASSWORD, &good_slot),
        })))
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = api
        .call(client.post(format!("{base}/connectors")).json(&json!({
            "name": "bad",
            "config": config(WRONG_PASSWORD, &unique_name("secrets_bad")),
        })))
        .await;
    assert_eq!(code, 201, "{body}");
    // An invalid property next to the password: a 400 naming the property, not echoing
    // the config.
    let mut invalid = config(WRONG_PASSWORD, "x");
    invalid["snapshot.mode"] = json!("sometimes");
    let (code, _) = api
        .call(client.post(format!("{base}/connectors")).json(&json!({
            "name": "invalid",
            "config": invalid.clone(),
        })))
        .await;
    assert_eq!(code, 400);
    api.call(
        client
            .put(format!(
                "{base}/connector-plugins/io.debezium.connector.postgresql.PostgresConnector/config/validate"
            ))
            .json(&invalid),
    )
    .await;

    // The good connector snapshots; the bad one fails on authentication.
    let settled = {
        let (client, base) = (&client, &base);
        wait_for(Duration::from_secs(60), || async move {
            let status = |name: &'static str| async move {
                let response = client
                    .get(format!("{base}/connectors/{name}/status"))
                    .basic_auth("admin", Some(REST_PASSWORD))
                    .send()
                    .await;
                match response {
                    Ok(r) => r.json::<Value>().await.unwrap_or_default(),
                    Err(_) => Value::Null,
                }
            };
            let good = status("good").await;
            let bad = status("bad").await;
            good["tasks"][0]["state"] == "RUNNING"
                && bad["tasks"][0]["state"] != "RUNNING"
                && bad["tasks"][0]["trace"].is_string()
        })
        .await
    };
    assert!(settled, "the connectors did not settle");

    for path in [
        "/",
        "/connectors?expand=status&expand=info",
        "/connectors/good",
        "/connectors/good/config",
        "/connectors/good/status",
        "/connectors/good/tasks",
        "/connectors/good/offsets",
        "/connectors/good/topics",
        "/connectors/bad/status",
        "/connectors/bad/config",
        "/connector-plugins",
        "/metrics",
        "/health",
    ] {
        api.call(client.get(format!("{base}{path}"))).await;
    }
    let (_, good) = api
        .call(client.get(format!("{base}/connectors/good/config")))
        .await;
    // A round trip of the masked config keeps the stored password.
    let (code, body) = api
        .call(
            client
                .put(format!("{base}/connectors/good/config"))
                .json(&good),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    api.call(client.post(format!("{base}/connectors/good/restart")))
        .await;
    let running_again = {
        let (client, base) = (&client, &base);
        wait_for(Duration::from_secs(60), || async move {
            let Ok(response) = client
                .get(format!("{base}/connectors/good/status"))
                .basic_auth("admin", Some(REST_PASSWORD))
                .send()
                .await
            else {
                return false;
            };
            let status: Value = response.json().await.unwrap_or_default();
            status["tasks"][0]["state"] == "RUNNING"
        })
        .await
    };
    assert!(
        running_again,
        "the masked config round trip lost the password"
    );
    api.call(client.delete(format!("{base}/connectors/bad")))
        .await;

    sigterm(daemon.child.id());
    let _ = daemon.child.wait();
    let log = std::fs::read_to_string(data.path().join("outflow.log")).unwrap();
    assert!(
        log.lines().count() > 20,
        "the log should hold the run at trace level"
    );
    let everything = api.0.join("\n");
    for secret in [
        REST_PASSWORD,
        DB_PASSWORD,
        WRONG_PASSWORD,
        REGISTRY_PASSWORD,
    ] {
        assert!(
            !everything.contains(secret),
            "a response holds the secret {secret}"
        );
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(secret)).take(3).collect();
        assert!(
            lines.is_empty(),
            "the log holds the secret {secret}: {lines:?}"
        );
    }
    // The state store keeps what it must to reconnect, but no other file in the data dir
    // holds a secret in the clear.
    for entry in std::fs::read_dir(data.path()).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("state.db") || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            REST_PASSWORD,
            DB_PASSWORD,
            WRONG_PASSWORD,
            REGISTRY_PASSWORD,
        ] {
            assert!(!text.contains(secret), "{name} holds the secret {secret}");
        }
    }
}
