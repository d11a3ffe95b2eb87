//! The crash test of the MariaDB path: 1,000 keys, 3,000 changes (single statements and
//! multi-statement transactions) while the daemon is SIGKILLed at 20 random moments and
//! restarted, into the lake; then every key's events must equal its committed changes, in
//! commit order: 0 lost, 0 duplicated — the binlog resume by (file, pos, event, row).

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use outflow_testkit::{CDC_PASSWORD, CDC_USER, mariadb, unique_name, wait_for};
use serde_json::json;

use crate::connectors::{Api, free_port, lake_changes, sigterm, start_with, up};
use crate::crash::Random;

/// Durable events of `table` per the metrics, all operations.
async fn durable_events(api: &Api, table: &str) -> u64 {
    let Ok(response) = api.client.get(format!("{}/metrics", api.base)).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("outflow_table_events_total{")
                && l.contains(&format!("table=\"{table}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The seed and the counts are the test's report.
async fn sigkill_twenty_times_streaming_from_mariadb_loses_and_repeats_nothing() {
    let seed = std::env::var("OUTFLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    println!("MariaDB crash test seed {seed} (OUTFLOW_CRASH_SEED={seed} replays it)");
    let db = mariadb().create_database("crashmaria").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE kv (k INT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    let values: Vec<String> = (1..=1000).map(|k| format!("({k}, 0)")).collect();
    conn.query_drop(format!("INSERT INTO kv VALUES {}", values.join(",")))
        .await
        .unwrap();
    let mut model: BTreeMap<i64, Vec<(String, Option<i64>)>> = (1..=1000)
        .map(|k| (k, vec![("r".to_owned(), Some(0))]))
        .collect();
    let mut present: BTreeMap<i64, i64> = (1..=1000).map(|k| (k, 0)).collect();

    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut daemon = start_with(data.path(), port, &[]);
    up(&daemon).await;
    let prefix = unique_name("crashm");
    let api = Api::new(&daemon.base);
    let (code, body) = api
        .send(api.post("/connectors").json(&json!({
            "name": "crash-maria",
            "config": {
                "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
                "database.hostname": "127.0.0.1",
                "database.port": mariadb().port(),
                "database.user": CDC_USER,
                "database.password": CDC_PASSWORD,
                "database.server.id": 5600,
                "database.include.list": db.name(),
                "topic.prefix": prefix,
                "flush.interval.ms": "300",
            }
        })))
        .await;
    assert_eq!(code, 201, "{body}");
    let table = format!("{}.kv", db.name());
    let snapshot = {
        let (api, table) = (&api, &table);
        wait_for(Duration::from_secs(60), || async move {
            durable_events(api, table).await >= 1000
        })
        .await
    };
    assert!(snapshot, "the snapshot did not become durable");

    // The plan: statements grouped into transactions of 1 to 3 changes.
    let mut random = Random(seed);
    let mut transactions: Vec<Vec<String>> = Vec::new();
    let mut changes = 0;
    while changes < 3000 {
        let size = 1 + random.below(3) as usize;
        let mut statements = Vec::new();
        for _ in 0..size {
            let k = i64::try_from(random.below(1000)).unwrap() + 1;
            let value = i64::try_from(random.below(1_000_000)).unwrap();
            match present.get(&k).copied() {
                Some(_) if random.below(4) == 0 => {
                    statements.push(format!("DELETE FROM kv WHERE k = {k}"));
                    present.remove(&k);
                    model.entry(k).or_default().push(("d".into(), None));
                }
                Some(_) => {
                    statements.push(format!("UPDATE kv SET v = {value} WHERE k = {k}"));
                    present.insert(k, value);
                    model.entry(k).or_default().push(("u".into(), Some(value)));
                }
                None => {
                    statements.push(format!("INSERT INTO kv VALUES ({k}, {value})"));
                    present.insert(k, value);
                    model.entry(k).or_default().push(("c".into(), Some(value)));
                }
            }
            changes += 1;
        }
        transactions.push(statements);
    }
    let mut writer = db.connect().await;
    let workload = tokio::spawn(async move {
        for statements in transactions {
            let text = if statements.len() == 1 {
                statements[0].clone()
            } else {
                format!("START TRANSACTION; {}; COMMIT", statements.join("; "))
            };
            writer.query_drop(text).await.unwrap();
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
    });
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150 + random.below(500))).await;
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        daemon = start_with(data.path(), port, &[]);
        up(&daemon).await;
    }
    workload.await.unwrap();

    let expected: usize = model.values().map(Vec::len).sum();
    // The metrics restart with each process; the files are what counts: wait until they
    // hold as many changes as were committed.
    let root = data.path().join("lake");
    let topic = format!("{prefix}.{}.kv", db.name());
    let complete = wait_for(Duration::from_secs(120), || {
        let root = root.clone();
        let topic = topic.clone();
        async move { lake_changes(&root, &topic, "k", "v").len() >= expected }
    })
    .await;
    sigterm(daemon.child.id());
    let _ = daemon.child.wait();
    let records = lake_changes(&root, &topic, "k", "v");
    let mut seen: BTreeMap<i64, Vec<(String, Option<i64>)>> = BTreeMap::new();
    for (op, k, value) in &records {
        seen.entry(*k).or_default().push((op.clone(), *value));
    }
    let mut lost = 0;
    let mut extra = 0;
    let mut wrong = Vec::new();
    for (k, changes) in &model {
        let got = seen.get(k).cloned().unwrap_or_default();
        lost += changes.len().saturating_sub(got.len());
        extra += got.len().saturating_sub(changes.len());
        if &got != changes && wrong.len() < 3 {
            wrong.push((k, changes.clone(), got));
        }
    }
    println!(
        "MariaDB crash test: {expected} changes expected, {} records read, lost {lost}, duplicated {extra} (files complete in time: {complete})",
        records.len()
    );
    assert!(
        wrong.is_empty(),
        "seed {seed}: per-key changes differ (expected, got): {wrong:?}"
    );
    assert_eq!(records.len(), expected, "seed {seed}");
}
