//! The offline subcommands (`validate`, `connectors create`) and the REST validation
//! endpoint: Kafka Connect's validation shape, errors naming the property, connectors
//! stored in the data dir starting with the next `serve`.

use std::process::{Command, Output};

use outflow_testkit::{postgres, unique_name};
use serde_json::{Value, json};

use crate::connectors::{Api, binary, free_port, start_with, up};

fn outflow(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("OUTFLOW_DATA_DIR", data)
        .env_remove("OUTFLOW_SINK")
        .current_dir(data)
        .output()
        .unwrap()
}

fn connector_file(dir: &std::path::Path, name: &str, config: &Value) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, json!({"name": name, "config": config}).to_string()).unwrap();
    path
}

fn error_of<'a>(report: &'a Value, property: &str) -> Option<&'a Value> {
    report["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"]["name"] == property)
        .map(|c| &c["value"]["errors"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_create_from_files_then_serve_runs_the_connector() {
    let db = postgres().create_database("cli").await;
    let data = tempfile::tempdir().unwrap();
    let config = json!({
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": db.server().port(),
        "database.user": "postgres",
        "database.password": "cli-secret-pw",
        "database.dbname": db.name(),
        "topic.prefix": unique_name("cli"),
        "slot.name": db.name(),
    });
    let good = connector_file(data.path(), "cli-conn", &config);
    let mut bad_config = config.clone();
    bad_config["snapshot.mode"] = json!("sometimes");
    let bad = connector_file(data.path(), "cli-bad", &bad_config);

    // validate: Kafka Connect's shape, exit 1 and the error on the bad property.
    let out = outflow(data.path(), &["validate", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error_count"], 1);
    assert_eq!(
        report["name"],
        "io.debezium.connector.postgresql.PostgresConnector"
    );
    let errors = error_of(&report, "snapshot.mode").unwrap();
    assert!(
        errors[0].as_str().unwrap().contains("sometimes"),
        "{report}"
    );
    let out = outflow(data.path(), &["validate", "-f", good.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error_count"], 0);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("cli-secret-pw"));
    // A bad worker config is exit 2, naming the key.
    let out = Command::new(binary())
        .args(["validate", "-f", good.to_str().unwrap()])
        .env("OUTFLOW_SINK", "ftp")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sink"));

    // connectors create: stored once; a second time is refused; a bad file too.
    let out = outflow(
        data.path(),
        &["connectors", "create", "-f", good.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = outflow(
        data.path(),
        &["connectors", "create", "-f", good.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = outflow(
        data.path(),
        &["connectors", "create", "-f", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("snapshot.mode"));

    // serve starts it; while serving, the data dir is the daemon's.
    let port = free_port();
    let daemon = start_with(data.path(), port, &[]);
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    assert_eq!(api.get("/connectors").await.1, json!(["cli-conn"]));
    let running = outflow_testkit::wait_for(std::time::Duration::from_secs(30), || async {
        api.get("/connectors/cli-conn/status").await.1["tasks"][0]["state"] == "RUNNING"
    })
    .await;
    assert!(running);
    let other = connector_file(data.path(), "cli-other", &config);
    let out = outflow(
        data.path(),
        &["connectors", "create", "-f", other.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("POST"));

    // The REST twin of validate.
    let request = |class: &str, body: &Value| {
        api.client
            .put(format!(
                "{}/connector-plugins/{class}/config/validate",
                api.base
            ))
            .json(body)
    };
    let (code, report) = api.send(request("PostgresConnector", &bad_config)).await;
    assert_eq!(code, 200);
    assert_eq!(report["error_count"], 1);
    assert!(error_of(&report, "snapshot.mode").is_some_and(|e| e[0].is_string()));
    assert_eq!(error_of(&report, "database.password").unwrap(), &json!([]));
    assert!(!report.to_string().contains("cli-secret-pw"));
    let (code, report) = api
        .send(request(
            "io.debezium.connector.postgresql.PostgresConnector",
            &config,
        ))
        .await;
    assert_eq!((code, &report["error_count"]), (200, &json!(0)));
    let (code, body) = api.send(request("com.example.Nope", &config)).await;
    assert_eq!((code, &body["error_code"]), (404, &json!(404)));
    let mut daemon = daemon;
    crate::connectors::sigterm(daemon.child.id());
    let _ = daemon.child.wait();
}
