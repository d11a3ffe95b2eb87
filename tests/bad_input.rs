//! The bad-input catalogue of the REST API: every typed connector property with an
//! invalid value is a 400 whose message names the property; an unknown connector class
//! is a 400; request bodies that are huge, truncated or of the wrong types are 4xx with
//! Kafka Connect's error shape; nothing is created and the daemon stays up throughout.

use serde_json::{Value, json};

use crate::connectors::{Api, free_port, start_with, up};

const POSTGRES: &str = "io.debezium.connector.postgresql.PostgresConnector";
const MARIADB: &str = "io.debezium.connector.mariadb.MariaDbConnector";
const MYSQL: &str = "io.debezium.connector.mysql.MySqlConnector";

/// A config that validates (nothing listens on port 9: validation does not connect).
fn valid(class: &str) -> Value {
    let mut config = json!({
        "connector.class": class,
        "database.hostname": "127.0.0.1",
        "database.port": "9",
        "database.user": "cdc",
        "database.password": "cdc",
        "topic.prefix": "bad",
    });
    if class == POSTGRES {
        config["database.dbname"] = json!("shop");
    } else {
        config["database.server.id"] = json!("6001");
    }
    config
}

/// Posts `config` as connector `bad`; records it in `wrong` unless the answer is a 400
/// (Kafka Connect's shape) whose message names `property`. Deletes what was created.
async fn expect_400_naming(
    api: &Api,
    config: Value,
    property: &str,
    what: String,
    wrong: &mut Vec<String>,
) {
    let (code, body) = api
        .send(
            api.post("/connectors")
                .json(&json!({"name": "bad", "config": config})),
        )
        .await;
    let message = body["message"].as_str().unwrap_or_default();
    if code != 400 || body["error_code"] != 400 || !message.contains(property) {
        wrong.push(format!("{what}: {code} {body}"));
    }
    if code == 201 {
        api.send(api.client.delete(format!("{}/connectors/bad", api.base)))
            .await;
    }
}

/// (property, invalid value) per connector class; each must be a 400 naming the property.
fn catalogue() -> Vec<(&'static str, &'static str, &'static str)> {
    let common: &[(&str, &str)] = &[
        ("database.port", "abc"),
        ("database.port", "70000"),
        ("snapshot.mode", "sometimes"),
        ("snapshot.fetch.size", "-1"),
        ("snapshot.fetch.size", "many"),
        ("snapshot.max.threads", "0"),
        ("heartbeat.interval.ms", "soon"),
        ("decimal.handling.mode", "float"),
        ("time.precision.mode", "nanos"),
        ("binary.handling.mode", "hex2"),
        ("tombstones.on.delete", "maybe"),
        ("table.include.list", "orders[("),
        ("column.exclude.list", "(("),
        ("flush.interval.ms", "often"),
        ("lake.format", "csv"),
        ("key.converter", "com.example.NoSuchConverter"),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
        ("value.converter.schemas.enable", "maybe"),
        ("transforms", "unwrap"),
        ("topic.prefix", "bad prefix!"),
    ];
    let postgres: &[(&str, &str)] = &[
        ("database.sslmode", "sometimes"),
        ("publication.autocreate.mode", "maybe"),
        ("slot.drop.on.stop", "maybe"),
        ("slot.name", "Bad-Slot!"),
        ("status.update.interval.ms", "x"),
    ];
    let binlog: &[(&str, &str)] = &[
        ("database.server.id", "x"),
        ("bigint.unsigned.handling.mode", "huge"),
        ("connect.timeout.ms", "x"),
        ("include.query", "yes"),
    ];
    let mut out = Vec::new();
    for (property, value) in common.iter().chain(postgres) {
        out.push((POSTGRES, *property, *value));
    }
    for class in [MARIADB, MYSQL] {
        for (property, value) in common.iter().chain(binlog) {
            out.push((class, *property, *value));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_property_is_a_400_naming_it() {
    let data = tempfile::tempdir().unwrap();
    let daemon = start_with(data.path(), free_port(), &[]);
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let mut wrong = Vec::new();
    for (class, property, value) in catalogue() {
        let mut config = valid(class);
        config[property] = json!(value);
        let what = format!("{class} {property}={value}");
        expect_400_naming(&api, config, property, what, &mut wrong).await;
    }
    // A missing required property names it too.
    for (class, required) in [
        (POSTGRES, "database.dbname"),
        (POSTGRES, "topic.prefix"),
        (MARIADB, "database.hostname"),
    ] {
        let mut config = valid(class);
        config.as_object_mut().unwrap().remove(required);
        let what = format!("{class} without {required}");
        expect_400_naming(&api, config, required, what, &mut wrong).await;
    }
    // An unknown class.
    let mut config = valid(POSTGRES);
    config["connector.class"] = json!("com.example.NoSuchConnector");
    expect_400_naming(
        &api,
        config,
        "connector.class",
        "unknown class".into(),
        &mut wrong,
    )
    .await;
    assert!(
        wrong.is_empty(),
        "not a 400 naming the property:\n{}",
        wrong.join("\n")
    );
    let (_, list) = api.get("/connectors").await;
    assert_eq!(list, json!([]), "nothing may be created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_truncated_and_mistyped_bodies_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let daemon = start_with(data.path(), free_port(), &[]);
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let raw = |path: &str, body: Vec<u8>| {
        api.post(path)
            .header("content-type", "application/json")
            .body(body)
    };
    let good = json!({"name": "x", "config": valid(POSTGRES)}).to_string();
    let huge_value = format!(
        r#"{{"name":"x","config":{{"connector.class":"{POSTGRES}","topic.prefix":"{}"}}}}"#,
        "a".repeat(64 * 1024 * 1024)
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("64 MB body", huge_value.into_bytes()),
        ("100,000 nested arrays", deep.into_bytes()),
        ("truncated", good.as_bytes()[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("not JSON", b"name=x".to_vec()),
        (
            "invalid UTF-8",
            b"{\"name\":\"\xff\xfe\",\"config\":{}}".to_vec(),
        ),
        ("an array", b"[1,2,3]".to_vec()),
        ("name a number", br#"{"name":5,"config":{}}"#.to_vec()),
        (
            "config a string",
            br#"{"name":"x","config":"all"}"#.to_vec(),
        ),
        ("config null", br#"{"name":"x","config":null}"#.to_vec()),
        (
            "a value an object",
            br#"{"name":"x","config":{"connector.class":{"nested":true}}}"#.to_vec(),
        ),
        ("no name", br#"{"config":{}}"#.to_vec()),
        ("empty name", br#"{"name":"","config":{}}"#.to_vec()),
        (
            "name with a slash",
            br#"{"name":"a/b","config":{}}"#.to_vec(),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, body) in cases {
        let response = raw("/connectors", body).send().await;
        match response {
            Ok(response) => {
                let code = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or_default();
                if !(400..500).contains(&code) || body["error_code"] != code {
                    wrong.push(format!("{what}: {code} {body}"));
                }
            }
            // The server may close the connection on a body past its limit.
            Err(e) if what == "64 MB body" => {
                let _ = e;
            }
            Err(e) => wrong.push(format!("{what}: {e}")),
        }
    }
    // PUT config and validate take the same bodies.
    for path in [
        "/connectors/x/config",
        &format!("/connector-plugins/{POSTGRES}/config/validate"),
    ] {
        for body in [&b"{\"a\":"[..], b"[]", b"\"text\""] {
            let response = api
                .client
                .put(format!("{}{path}", api.base))
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            if !(400..500).contains(&code) {
                wrong.push(format!(
                    "PUT {path} {:?}: {code}",
                    String::from_utf8_lossy(body)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused with Kafka Connect's shape:\n{}",
        wrong.join("\n")
    );
    let (code, _) = api.get("/health").await;
    assert_eq!(code, 200, "the daemon must stay up");
    let (_, list) = api.get("/connectors").await;
    assert_eq!(list, json!([]), "nothing may be created");
}
