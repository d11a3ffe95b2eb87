//! The bad-data catalogue: rows and schemas a database accepts but a naive CDC pipeline
//! trips on — latin1 text, bytes that are not UTF-8, column names that are not Avro
//! names, a table without a primary key, a DDL statement the parser cannot read, 100 MB
//! values, 10,000 tables. Each one reaches the lake intact, or (bytes a SQL_ASCII
//! database holds that are not UTF-8) stops the connector with a status that says why;
//! nothing panics and nothing is lost.

use std::time::Duration;

use apache_avro::types::Value as Avro;
use mysql_async::prelude::Queryable as _;
use outflow_testkit::{CDC_PASSWORD, CDC_USER, mariadb, postgres, unique_name, wait_for};
use serde_json::{Value, json};

use crate::connectors::{Api, free_port, start_with, up};

/// Every record's `after` image (or `before` for deletes) in the lake files of `topic`, as
/// (op, field name → value) maps.
fn lake_rows(root: &std::path::Path, topic: &str) -> Vec<(String, Vec<(String, Avro)>)> {
    let dir = root.join(topic);
    let Ok(files) = outflow_lake::layout::walk(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = files
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && !n.ends_with(".tmp"))
        })
        .collect();
    files.sort();
    let unwrap = |v: &Avro| match v {
        Avro::Union(_, inner) => (**inner).clone(),
        other => other.clone(),
    };
    let mut out = Vec::new();
    for file in files {
        let reader = apache_avro::Reader::new(std::fs::File::open(&file).unwrap()).unwrap();
        for record in reader {
            let Avro::Record(fields) = record.unwrap() else {
                continue;
            };
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| unwrap(v))
            };
            let Some(Avro::String(op)) = get("op") else {
                continue;
            };
            let image = get(if op == "d" { "before" } else { "after" });
            let Some(Avro::Record(columns)) = image else {
                continue;
            };
            out.push((
                op,
                columns.into_iter().map(|(n, v)| (n, unwrap(&v))).collect(),
            ));
        }
    }
    out
}

fn column<'a>(row: &'a [(String, Avro)], name: &str) -> &'a Avro {
    &row.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no column {name} in {row:?}"))
        .1
}

async fn task_state(api: &Api, name: &str) -> Value {
    api.get(&format!("/connectors/{name}/status")).await.1["tasks"][0].clone()
}

/// A default daemon (lake sink) running the Postgres connector `name` on `dbname`.
struct LakeRun {
    daemon: crate::connectors::Daemon,
    api: Api,
    data: tempfile::TempDir,
    prefix: String,
}

impl LakeRun {
    async fn postgres(name: &str, port: u16, dbname: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        let daemon = start_with(data.path(), free_port(), &[]);
        up(&daemon).await;
        let api = Api::new(&daemon.base);
        let prefix = unique_name(name);
        let (code, body) = api
            .send(api.post("/connectors").json(&json!({
                "name": name,
                "config": {
                    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                    "database.hostname": "127.0.0.1",
                    "database.port": port,
                    "database.user": "postgres",
                    "database.dbname": dbname,
                    "topic.prefix": prefix,
                    "slot.name": dbname,
                    "flush.interval.ms": "200",
                }
            })))
            .await;
        assert_eq!(code, 201, "{body}");
        Self {
            daemon,
            api,
            data,
            prefix,
        }
    }

    fn root(&self) -> std::path::PathBuf {
        self.data.path().join("lake")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_latin1_text_odd_column_names_no_key_and_unreadable_ddl() {
    let db = mariadb().create_database("baddata").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE odd (id INT PRIMARY KEY, `1st col` INT, `my-col` VARCHAR(10), \
           `größe` VARCHAR(10) CHARACTER SET utf8mb4, l1 VARCHAR(20) CHARACTER SET latin1) \
           DEFAULT CHARSET=latin1;
         INSERT INTO odd VALUES (1, 1, 'a', 'groß', 'café ß');
         CREATE TABLE nokey (a INT, b VARCHAR(10));
         INSERT INTO nokey VALUES (1, 'x'), (1, 'x');",
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let daemon = start_with(data.path(), free_port(), &[]);
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let prefix = unique_name("baddata");
    let (code, body) = api
        .send(api.post("/connectors").json(&json!({
            "name": "odd",
            "config": {
                "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
                "database.hostname": "127.0.0.1",
                "database.port": mariadb().port(),
                "database.user": CDC_USER,
                "database.password": CDC_PASSWORD,
                "database.server.id": 6100,
                "database.include.list": db.name(),
                "topic.prefix": prefix,
                "field.name.adjustment.mode": "avro",
                "flush.interval.ms": "200",
            }
        })))
        .await;
    assert_eq!(code, 201, "{body}");
    let root = data.path().join("lake");
    let odd_topic = format!("{prefix}.{}.odd", db.name());
    let nokey_topic = format!("{prefix}.{}.nokey", db.name());
    let snapshot =
        wait_for(Duration::from_secs(60), || {
            let (root, odd_topic, nokey_topic) = (&root, &odd_topic, &nokey_topic);
            async move {
                !lake_rows(root, odd_topic).is_empty() && lake_rows(root, nokey_topic).len() >= 2
            }
        })
        .await;
    assert!(snapshot, "status {}", task_state(&api, "odd").await);
    // Streamed too: latin1 from the binlog, duplicate rows of a keyless table.
    conn.query_drop(
        "INSERT INTO odd VALUES (2, 2, 'b', 'Maß', 'naïve £');
         INSERT INTO nokey VALUES (2, 'y'), (2, 'y');
         DELETE FROM nokey WHERE a = 1;",
    )
    .await
    .unwrap();
    let arrived =
        wait_for(Duration::from_secs(60), || {
            let (root, odd_topic, nokey_topic) = (&root, &odd_topic, &nokey_topic);
            async move {
                lake_rows(root, odd_topic).len() >= 2 && lake_rows(root, nokey_topic).len() >= 6
            }
        })
        .await;
    assert!(
        arrived,
        "status {}; odd {:?}; nokey {:?}; log:\n{}",
        task_state(&api, "odd").await,
        lake_rows(&root, &odd_topic),
        lake_rows(&root, &nokey_topic),
        std::fs::read_to_string(data.path().join("outflow.log")).unwrap_or_default()
    );
    let odd = lake_rows(&root, &odd_topic);
    let texts: Vec<(&Avro, &Avro, &Avro)> = odd
        .iter()
        .map(|(_, row)| {
            (
                column(row, "l1"),
                column(row, "gr__e"),
                column(row, "_st_col"),
            )
        })
        .collect();
    assert_eq!(
        texts,
        [
            (
                &Avro::String("café ß".into()),
                &Avro::String("groß".into()),
                &Avro::Int(1)
            ),
            (
                &Avro::String("naïve £".into()),
                &Avro::String("Maß".into()),
                &Avro::Int(2)
            ),
        ]
    );
    // Debezium's `avro` adjustment: each character outside [A-Za-z0-9_] (and a leading
    // digit) becomes `_`.
    assert_eq!(column(&odd[0].1, "my_col"), &Avro::String("a".into()));
    assert_eq!(
        odd.iter().map(|(op, _)| op.as_str()).collect::<Vec<_>>(),
        ["r", "c"]
    );
    // The keyless table: every row, duplicates included, deletes with their before image.
    let ops: Vec<String> = lake_rows(&root, &nokey_topic)
        .into_iter()
        .map(|(op, _)| op)
        .collect();
    assert_eq!(ops, ["r", "r", "c", "c", "d", "d"]);

    // DDL the SQL parser cannot read (MariaDB's `ALTER ONLINE TABLE`) and DDL it can
    // (a virtual invisible column): the head reader names the table, the new shape comes
    // from information_schema, and the rows after it carry the new columns.
    conn.query_drop("ALTER ONLINE TABLE odd ADD COLUMN w INT NOT NULL DEFAULT 7")
        .await
        .unwrap();
    conn.query_drop(
        "ALTER TABLE odd ADD COLUMN z INT AS (id * 2) VIRTUAL INVISIBLE, ALGORITHM=INPLACE",
    )
    .await
    .unwrap();
    conn.query_drop("INSERT INTO odd (id, `1st col`) VALUES (3, 3)")
        .await
        .unwrap();
    let settled = wait_for(Duration::from_secs(60), || {
        let (api, root, odd_topic) = (&api, &root, &odd_topic);
        async move {
            lake_rows(root, odd_topic).len() >= 3
                || task_state(api, "odd").await["state"] == "FAILED"
        }
    })
    .await;
    let state = task_state(&api, "odd").await;
    assert!(settled && state["state"] == "RUNNING", "status {state}");
    let rows = lake_rows(&root, &odd_topic);
    assert_eq!(column(&rows[2].1, "id"), &Avro::Int(3));
    assert_eq!(column(&rows[2].1, "w"), &Avro::Int(7));
    assert_eq!(column(&rows[2].1, "z"), &Avro::Int(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bytes_that_are_not_utf8_in_a_sql_ascii_database() {
    let server = postgres();
    let name = unique_name("sqlascii");
    let admin = server.connect("postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        ))
        .await
        .unwrap();
    let db = server.connect(&name).await;
    db.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t VALUES (1, E'caf\\xe9'), (2, 'plain');",
    )
    .await
    .unwrap();
    let run = LakeRun::postgres("ascii", server.port(), &name).await;
    let (api, prefix, root) = (&run.api, &run.prefix, run.root());
    db.batch_execute("INSERT INTO t VALUES (3, E'\\xff\\xfe'), (4, 'after');")
        .await
        .unwrap();
    let topic = format!("{prefix}.public.t");
    let settled = wait_for(Duration::from_secs(60), || {
        let (api, root, topic) = (&api, &root, &topic);
        async move {
            lake_rows(root, topic).len() >= 4 || task_state(api, "ascii").await["state"] == "FAILED"
        }
    })
    .await;
    let state = task_state(api, "ascii").await;
    assert!(settled, "status {state}");
    // tokio-postgres, like pgjdbc under Debezium, talks UTF8 to the server, which refuses
    // to send these bytes: the connector stops, and its status carries the server's
    // message (the database, not outflow, would have to change).
    assert_eq!(state["state"], "FAILED", "{state}");
    let trace = state["trace"].as_str().unwrap_or_default();
    assert!(
        trace.contains("invalid byte sequence for encoding \"UTF8\""),
        "{trace}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The peak memory is part of the report.
async fn a_100_mb_bytea_row_reaches_the_lake_whole() {
    let db = postgres().create_database("bigrow").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE blobs (id int PRIMARY KEY, body bytea);
             ALTER TABLE blobs ALTER COLUMN body SET STORAGE EXTERNAL;",
        )
        .await
        .unwrap();
    let run = LakeRun::postgres("big", db.server().port(), db.name()).await;
    let (api, prefix, root) = (&run.api, &run.prefix, run.root());
    let topic = format!("{prefix}.public.blobs");
    // Two rows streamed, 100 MB each (a repeated 32-byte pattern), the first while the
    // connector is still starting.
    let size = 100 * 1024 * 1024;
    let fill = |id: i32| {
        format!(
            "INSERT INTO blobs SELECT {id}, decode(repeat(encode(decode(md5('x') || md5('y'), 'hex'), 'hex'), {}), 'hex')",
            size / 32
        )
    };
    admin.batch_execute(&fill(1)).await.unwrap();
    let streamed = {
        let api = &api;
        wait_for(Duration::from_secs(120), || async move {
            let (_, offsets) = api.get("/connectors/big/offsets").await;
            offsets["offsets"][0]["offset"]["lsn"].is_u64()
        })
        .await
    };
    assert!(streamed, "status {}", task_state(api, "big").await);
    admin.batch_execute(&fill(2)).await.unwrap();
    let arrived = wait_for(Duration::from_secs(180), || {
        let (root, topic) = (&root, &topic);
        async move { lake_rows(root, topic).len() >= 2 }
    })
    .await;
    assert!(arrived, "status {}", task_state(api, "big").await);
    let rows = lake_rows(&root, &topic);
    for (op, row) in &rows {
        let Avro::Bytes(bytes) = column(row, "body") else {
            panic!("{op}: body is not bytes");
        };
        assert_eq!(bytes.len(), size, "{op}");
        assert_eq!(&bytes[..16], &bytes[32..48], "{op}: the pattern repeats");
    }
    assert_eq!(rows.len(), 2);
    let status = std::fs::read_to_string(format!("/proc/{}/status", run.daemon.child.id()))
        .unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or_default()
        .to_owned();
    println!("100 MB rows: daemon peak RSS {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The timings are part of the report.
async fn ten_thousand_tables_in_one_database() {
    const TABLES: usize = 10_000;
    let db = postgres().create_database("manytables").await;
    let admin = db.connect().await;
    // In batches: one transaction would need more locks than the server has slots.
    for batch in 0..TABLES / 1000 {
        let (from, to) = (batch * 1000 + 1, batch * 1000 + 1000);
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN FOR i IN {from}..{to} LOOP
                   EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v int)', i);
                   EXECUTE format('INSERT INTO t%s VALUES (1, %s)', i, i);
                 END LOOP; END $$;"
            ))
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    let run = LakeRun::postgres("many", db.server().port(), db.name()).await;
    let (api, prefix, root) = (&run.api, &run.prefix, run.root());
    let snapshot = {
        let api = &api;
        wait_for(Duration::from_secs(600), || async move {
            let (_, offsets) = api.get("/connectors/many/offsets").await;
            let offset = &offsets["offsets"][0]["offset"];
            offset["lsn"].is_u64() && offset.get("snapshot").is_none()
        })
        .await
    };
    assert!(snapshot, "status {}", task_state(api, "many").await);
    let snapshot_time = started.elapsed();
    admin
        .batch_execute("INSERT INTO t10000 VALUES (2, 2); INSERT INTO t1 VALUES (2, 2);")
        .await
        .unwrap();
    let streamed = wait_for(Duration::from_secs(120), || {
        let root = &root;
        let prefix = &prefix;
        async move {
            lake_rows(root, &format!("{prefix}.public.t10000")).len() == 2
                && lake_rows(root, &format!("{prefix}.public.t1")).len() == 2
        }
    })
    .await;
    assert!(streamed, "status {}", task_state(api, "many").await);
    let table_topic = format!("{prefix}.public.t");
    let topics = std::fs::read_dir(&root)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(&table_topic))
        })
        .count();
    assert_eq!(topics, TABLES, "one lake directory per table");
    println!(
        "10,000 tables: snapshot durable after {snapshot_time:?}, then streaming; {topics} lake topics"
    );
}
