//! Debezium as the oracle: the same database changes captured by Debezium 3.6 (on the
//! lab's Kafka Connect worker) and by outflow (the daemon, Kafka sink), both under
//! Connect's `JsonConverter` with `schemas.enable=true`, compared record by record, key
//! and value, schema and payload.
//!
//! What may differ is data the test reads, `tests/data/debezium_differences.json`: fields
//! that differ by construction (processing time, `source.version`, a snapshot row's slot
//! point or binlog coordinates) and the known gaps docs/compatibility.md explains; each
//! is rewritten on both sides before the comparison, and any other difference fails.
//! The topic prefix (each connector has its own) becomes `PREFIX` in every schema name
//! and in `source.name`. Streamed rows keep `lsn`, `txId` and the commit time: both
//! connectors read the same WAL or binlog.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use outflow_testkit::{
    CDC_PASSWORD, CDC_USER, broker, debezium, debezium_connector_class, mariadb, postgres,
    unique_name,
};
use rdkafka::message::{Headers as _, Message};
use serde_json::{Value, json};

use crate::connectors::{Api, free_port, start, up};

/// One Kafka record as JSON: key, value (`None` for a tombstone) and its `__debezium.*`
/// headers as text.
type Record = (Option<Value>, Option<Value>, Vec<(String, String)>);

/// Reads `topic` from the start until `count` records arrived or two minutes passed.
fn records(topic: &str, count: usize) -> Vec<Record> {
    let consumer = crate::connectors::consumer_from_start(topic);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    while out.len() < count && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let parse = |bytes: Option<&[u8]>| bytes.map(|b| serde_json::from_slice(b).unwrap());
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .filter(|h| h.key.starts_with("__debezium."))
                        .map(|h| {
                            let text = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                            (h.key.to_owned(), text.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((parse(message.key()), parse(message.payload()), headers));
        }
    }
    out
}

/// What the comparison accepts (`tests/data/debezium_differences.json`), read by the test.
fn accepted() -> &'static Value {
    static ACCEPTED: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        serde_json::from_str(include_str!("data/debezium_differences.json")).unwrap()
    });
    &ACCEPTED
}

/// A record with what may differ between the two connectors made equal: the topic
/// prefix becomes `PREFIX`, and each accepted field (by path, for the rows and
/// connectors it names) becomes `<normalised>` or `<gap>` where it is present.
fn normalised(record: &Record, prefix: &str) -> Record {
    let fix = |value: &Option<Value>| {
        let value = value.as_ref()?;
        let text = serde_json::to_string(value)
            .unwrap()
            .replace(&format!("\"{prefix}."), "\"PREFIX.")
            .replace(&format!("\"{prefix}\""), "\"PREFIX\"");
        let mut value: Value = serde_json::from_str(&text).unwrap();
        let source = &value["payload"]["source"];
        let connector = source["connector"].as_str().unwrap_or_default().to_owned();
        let snapshot = source["snapshot"].as_str().is_some_and(|s| s != "false");
        for entry in accepted()["fields"].as_array().unwrap() {
            let rows = entry["rows"].as_str().unwrap();
            let rows_match = rows == "all" || (rows == "snapshot") == snapshot;
            let connector_match = entry["connectors"]
                .as_array()
                .is_none_or(|list| list.iter().any(|c| c == connector.as_str()));
            if !rows_match || !connector_match {
                continue;
            }
            let path: Vec<&str> = entry["path"].as_str().unwrap().split('.').collect();
            let (last, parents) = path.split_last().unwrap();
            let mut at = &mut value;
            for step in parents {
                at = &mut at[*step];
            }
            if let Some(object) = at.as_object_mut()
                && object.contains_key(*last)
            {
                let kind = entry["kind"].as_str().unwrap();
                object.insert((*last).to_owned(), json!(format!("<{kind}>")));
            }
        }
        Some(value)
    };
    let accepted_header = |name: &str| {
        accepted()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| name.starts_with(h["prefix"].as_str().unwrap()))
    };
    let headers = record
        .2
        .iter()
        .filter(|(name, _)| !accepted_header(name))
        .cloned()
        .collect();
    (fix(&record.0), fix(&record.1), headers)
}

/// Where two JSON values first differ (a path and both sides), or `None`.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let side = |v: Option<&Value>| v.map_or_else(|| "(absent)".to_owned(), short);
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => first_difference(&format!("{path}.{k}"), l, r),
                    (l, r) => Some(format!(
                        "{path}.{k}: debezium {} / outflow {}",
                        side(l),
                        side(r)
                    )),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (l, r))| first_difference(&format!("{path}[{i}]"), l, r)),
        _ if a == b => None,
        _ => Some(format!(
            "{path}: debezium {} / outflow {}",
            short(a),
            short(b)
        )),
    }
}

/// A value cut to 200 characters, for bounded failure messages.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 200 {
        text
    } else {
        format!("{}…", text.chars().take(200).collect::<String>())
    }
}

/// Compares the two topics record by record; panics with the count and the first five
/// differences.
fn assert_same(table: &str, debezium: &[Record], dbz_prefix: &str, ours: &[Record], prefix: &str) {
    let mut differences = Vec::new();
    for (i, (theirs, mine)) in debezium.iter().zip(ours).enumerate() {
        let (theirs, mine) = (normalised(theirs, dbz_prefix), normalised(mine, prefix));
        let null = Value::Null;
        for (part, l, r) in [("key", &theirs.0, &mine.0), ("value", &theirs.1, &mine.1)] {
            if let Some(d) = first_difference(
                part,
                l.as_ref().unwrap_or(&null),
                r.as_ref().unwrap_or(&null),
            ) {
                differences.push(format!("record {i}: {d}"));
            }
        }
        if theirs.2 != mine.2 {
            differences.push(format!(
                "record {i}: headers: debezium {:?} / outflow {:?}",
                theirs.2, mine.2
            ));
        }
    }
    assert!(
        differences.is_empty() && debezium.len() == ours.len(),
        "{table}: Debezium wrote {} records, outflow {}; {} differ, the first: {:#?}",
        debezium.len(),
        ours.len(),
        differences.len(),
        &differences[..differences.len().min(5)]
    );
}

/// Creates a connector on the Debezium worker and waits until its task runs.
pub(crate) async fn start_debezium(name: &str, config: Value) {
    let worker = debezium();
    let api = Api::new(&worker.url());
    let (code, body) = api
        .send(
            api.post("/connectors")
                .json(&json!({"name": name, "config": config})),
        )
        .await;
    assert_eq!(code, 201, "Debezium refused the connector: {body}");
    let running = outflow_testkit::wait_for(Duration::from_secs(60), || {
        let api = &api;
        async move {
            let (_, status) = api.get(&format!("/connectors/{name}/status")).await;
            status["tasks"][0]["state"] == "RUNNING"
        }
    })
    .await;
    assert!(
        running,
        "Debezium's task did not start:\n{}",
        worker.log_tail(30)
    );
}

/// The outflow side of a comparison: the daemon and its data dir, kept while the test runs.
struct Outflow {
    _daemon: crate::connectors::Daemon,
    _data: tempfile::TempDir,
}

/// Starts `theirs` on the Debezium worker and `ours` in a fresh outflow daemon (each
/// named after its `topic.prefix`), and waits until each topic of `topics` (Debezium's,
/// outflow's) holds the `rows` snapshot records.
async fn start_both(theirs: Value, ours: Value, topics: [String; 2], rows: usize) -> Outflow {
    let name = |config: &Value| config["topic.prefix"].as_str().unwrap().to_owned();
    start_debezium(&name(&theirs), theirs).await;
    let data = tempfile::tempdir().unwrap();
    let daemon = start(data.path(), free_port());
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let ours_name = name(&ours);
    let (code, body) = api
        .send(
            api.post("/connectors")
                .json(&json!({"name": ours_name, "config": ours})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let [theirs_topic, ours_topic] = topics;
    assert_eq!(
        records(&theirs_topic, rows).len(),
        rows,
        "Debezium's snapshot"
    );
    let snapshot = records(&ours_topic, rows).len();
    if snapshot != rows {
        let (_, status) = api.get(&format!("/connectors/{ours_name}/status")).await;
        panic!("outflow's snapshot: {snapshot} of {rows} records; status {status}");
    }
    Outflow {
        _daemon: daemon,
        _data: data,
    }
}

/// The Postgres comparison: a table of 25 column types (NULLs, extremes, 4-byte UTF-8),
/// its snapshot, then one transaction per statement: inserts (NaN, ±infinity), updates,
/// a key change, a delete and a truncate, with `modes` set on both connectors. With
/// `provide.transaction.metadata` the transaction topics are compared too.
async fn postgres_case(modes: &[(&str, &str)]) {
    let _shared = crate::BROKER.read().await;
    let worker = debezium();
    eprintln!(
        "Debezium worker: started in {:.1} s, RSS {} MB",
        worker.started_in().as_secs_f64(),
        worker.rss_bytes().unwrap_or(0) / 1_000_000
    );
    let db = postgres().create_database("oracle").await;
    let admin = db.connect().await;
    // Roles are cluster-wide: one per test.
    let user = format!("{}_cdc", db.name());
    admin
        .batch_execute(&format!(
            "CREATE ROLE {user} LOGIN REPLICATION SUPERUSER PASSWORD 'oracle-secret'"
        ))
        .await
        .unwrap();
    admin
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS hstore;
             CREATE TABLE toast_default (id int PRIMARY KEY, note text, big text);
             CREATE TABLE toast_full (id int PRIMARY KEY, note text, big text);
             ALTER TABLE toast_full REPLICA IDENTITY FULL;
             CREATE TABLE kinds (
                 id int PRIMARY KEY,
                 small smallint, big bigint, flag boolean, real4 real, double8 double precision,
                 amount numeric(12,3), free numeric, name varchar(40), body text, ch char(3),
                 day date, at timestamp, at_tz timestamptz, clock time, clock_tz timetz,
                 span interval, raw bytea, doc jsonb, docj json, ident uuid, tags text[],
                 addr inet, bits bit(4), attrs hstore);
             INSERT INTO kinds VALUES
               (1, -32768, 9223372036854775807, true, 1.5, -2.25, 123456789.125, 3.14159,
                'Zoë 🦀', 'long text', 'abc', '2024-02-29', '2024-02-29 23:59:59.123456',
                '2024-02-29 23:59:59.123456+02', '13:14:15.5', '13:14:15+05', '1 year 2 days 3 hours',
                '\\xdeadbeef', '{\"a\": [1, 2]}', '{\"b\": null}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                '{x,y}', '192.168.0.1', B'1010', 'a=>1, \"b c\"=>NULL'),
               (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .await
        .unwrap();
    let dbz_prefix = unique_name("dbz");
    let prefix = unique_name("ofl");
    let common = |slot: &str, publication: &str, topic_prefix: &str| {
        let mut config = json!({
            "connector.class": debezium_connector_class("postgres"),
            "database.hostname": "127.0.0.1",
            "database.port": db.server().port(),
            "database.user": user,
            "database.password": "oracle-secret",
            "database.dbname": db.name(),
            "topic.prefix": topic_prefix,
            "slot.name": slot,
            "publication.name": publication,
            "plugin.name": "pgoutput",
            "table.include.list": "public.kinds,public.toast_default,public.toast_full",
        });
        for (k, v) in modes {
            config[*k] = json!(v);
        }
        config
    };
    let topic = |p: &str| format!("{p}.public.kinds");
    // The snapshot first, so the stream's changes follow it on both sides.
    let _outflow = start_both(
        common(&format!("{}_dbz", db.name()), "dbz_oracle_pub", &dbz_prefix),
        common(&format!("{}_ofl", db.name()), "ofl_oracle_pub", &prefix),
        [topic(&dbz_prefix), topic(&prefix)],
        2,
    )
    .await;
    let statements = [
        "INSERT INTO kinds (id, small, name, amount, at_tz, day)
             VALUES (3, 7, 'three', -0.001, 'infinity', '-infinity')",
        "INSERT INTO kinds (id, free, real4, double8, day, at, at_tz)
             VALUES (5, 'NaN', 'Infinity', '-Infinity', 'infinity', '-infinity', '-infinity')",
        "UPDATE kinds SET body = 'changed', big = -1 WHERE id = 1",
        "UPDATE kinds SET clock_tz = '01:02:03.25-01', span = '-3 days 00:00:01' WHERE id = 2",
        "UPDATE kinds SET id = 4 WHERE id = 2",
        "DELETE FROM kinds WHERE id = 3",
        "TRUNCATE kinds",
        // Values past the TOAST threshold that do not compress, then an update that
        // leaves them unchanged: Debezium's placeholder under REPLICA IDENTITY DEFAULT,
        // the old value under FULL.
        "INSERT INTO toast_default SELECT 1, 'first', string_agg(md5(i::text), '')
             FROM generate_series(1, 400) i",
        "INSERT INTO toast_full SELECT 1, 'first', string_agg(md5(i::text), '')
             FROM generate_series(1, 400) i",
        "UPDATE toast_default SET note = 'second' WHERE id = 1",
        "UPDATE toast_full SET note = 'second' WHERE id = 1",
    ];
    for statement in statements {
        admin.batch_execute(statement).await.unwrap();
    }
    let truncates = modes.contains(&("skipped.operations", "none"));
    // 2 snapshot rows; 2 inserts; 2 updates; a key change (delete + tombstone + create,
    // with the other key in a header); delete + tombstone; the truncate when it is not
    // skipped.
    let expected = 2 + 2 + 2 + 3 + 2 + usize::from(truncates);
    let theirs = records(&topic(&dbz_prefix), expected);
    let ours = records(&topic(&prefix), expected);
    assert_same("public.kinds", &theirs, &dbz_prefix, &ours, &prefix);
    for table in ["toast_default", "toast_full"] {
        let topic = |p: &str| format!("{p}.public.{table}");
        let theirs = records(&topic(&dbz_prefix), 2);
        let ours = records(&topic(&prefix), 2);
        assert_same(table, &theirs, &dbz_prefix, &ours, &prefix);
    }
    if modes.contains(&("provide.transaction.metadata", "true")) {
        let topic = |p: &str| format!("{p}.transaction");
        let expected = 2 * statements.len();
        let theirs = records(&topic(&dbz_prefix), expected);
        let ours = records(&topic(&prefix), expected);
        assert_same("transactions", &theirs, &dbz_prefix, &ours, &prefix);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_types_snapshot_and_stream_match_debezium() {
    postgres_case(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_handling_modes_truncate_and_transactions_match_debezium() {
    postgres_case(&[
        ("decimal.handling.mode", "string"),
        ("time.precision.mode", "connect"),
        ("binary.handling.mode", "base64"),
        ("interval.handling.mode", "string"),
        ("hstore.handling.mode", "map"),
        ("skipped.operations", "none"),
        ("provide.transaction.metadata", "true"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_types_snapshot_and_stream_match_debezium() {
    mariadb_case(&[], 6101).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_handling_modes_match_debezium() {
    mariadb_case(
        &[
            ("decimal.handling.mode", "string"),
            ("time.precision.mode", "connect"),
            ("binary.handling.mode", "hex"),
        ],
        6111,
    )
    .await;
}

/// The MariaDB comparison: a table of 23 column types, its snapshot, then inserts,
/// updates, a key change and a delete, with `modes` set on both connectors (server ids
/// `server_id` and the next).
async fn mariadb_case(modes: &[(&str, &str)], server_id: u32) {
    let _shared = crate::BROKER.read().await;
    let db = mariadb().create_database("oracle").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE kinds (
             id INT PRIMARY KEY,
             tiny TINYINT, small SMALLINT, medium MEDIUMINT, uint INT UNSIGNED,
             ubig BIGINT UNSIGNED, flag BOOLEAN, amount DECIMAL(12,3), f FLOAT, d DOUBLE,
             name VARCHAR(40) CHARACTER SET utf8mb4, body TEXT, ch CHAR(3), day DATE,
             at DATETIME(6), stamp TIMESTAMP(3) NULL, clock TIME(6), yr YEAR, raw BLOB,
             doc JSON, pick ENUM('a','b','c'), many SET('x','y','z'), bits BIT(4));
         INSERT INTO kinds VALUES
           (1, -128, -32768, 8388607, 4294967295, 18446744073709551615, TRUE,
            123456789.125, 1.5, -2.25, 'Zoë 🦀', 'long text', 'abc', '2024-02-29',
            '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.123', '-838:59:59.000000',
            2024, x'deadbeef', '{\"a\": [1, 2]}', 'b', 'x,z', b'1010'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .await
    .unwrap();
    let dbz_prefix = unique_name("dbzm");
    let prefix = unique_name("oflm");
    let common = |topic_prefix: &str, server_id: u32| {
        let mut config = json!({
            "connector.class": debezium_connector_class("mariadb"),
            "database.hostname": "127.0.0.1",
            "database.port": mariadb().port(),
            "database.user": CDC_USER,
            "database.password": CDC_PASSWORD,
            "database.server.id": server_id,
            "database.include.list": db.name(),
            "table.include.list": format!("{}.kinds", db.name()),
            "topic.prefix": topic_prefix,
        });
        for (k, v) in modes {
            config[*k] = json!(v);
        }
        config
    };
    let mut theirs_config = common(&dbz_prefix, server_id);
    theirs_config["schema.history.internal.kafka.bootstrap.servers"] =
        json!(broker().bootstrap_servers());
    theirs_config["schema.history.internal.kafka.topic"] = json!(format!("{dbz_prefix}.history"));
    let topic = |p: &str| format!("{p}.{}.kinds", db.name());
    let _outflow = start_both(
        theirs_config,
        common(&prefix, server_id + 1),
        [topic(&dbz_prefix), topic(&prefix)],
        2,
    )
    .await;
    conn.query_drop(
        "INSERT INTO kinds (id, small, name, amount, clock) VALUES (3, 7, 'three', -0.001, '00:00:00.5');
         UPDATE kinds SET body = 'changed', ubig = 0 WHERE id = 1;
         UPDATE kinds SET id = 4 WHERE id = 2;
         DELETE FROM kinds WHERE id = 3;",
    )
    .await
    .unwrap();
    // 2 snapshot rows; insert; update; key change (delete + tombstone + create); delete +
    // tombstone.
    let expected = 2 + 1 + 1 + 3 + 2;
    let theirs = records(&topic(&dbz_prefix), expected);
    let ours = records(&topic(&prefix), expected);
    assert_same("kinds", &theirs, &dbz_prefix, &ours, &prefix);
}
