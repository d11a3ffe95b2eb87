//! MariaDB end to end through the core pipeline: snapshot, streaming of inserts,
//! updates and deletes with transaction boundaries, resume after a stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use outflow_core::{
    ChangeEvent, EventKind, MemoryOffsetStore, MemorySink, MemorySinkMode, Pipeline,
    PipelineConfig, SourcePosition, Value,
};
use outflow_mysql::{MySqlConfig, MySqlSource};
use outflow_testkit::{CDC_PASSWORD, CDC_USER, mariadb, wait_for};
use tokio_util::sync::CancellationToken;

fn source(database: &str, server_id: u32, extra: &[(&str, &str)]) -> MySqlSource {
    let port = mariadb().port().to_string();
    let server_id = server_id.to_string();
    let include = format!("{database}\\..*");
    let mut props: BTreeMap<String, String> = [
        (
            "connector.class",
            "io.debezium.connector.mariadb.MariaDbConnector",
        ),
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", CDC_USER),
        ("database.password", CDC_PASSWORD),
        ("database.server.id", server_id.as_str()),
        ("table.include.list", include.as_str()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    props.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    MySqlSource::new(MySqlConfig::from_properties(&props).unwrap())
}

fn row_ops(events: &[ChangeEvent]) -> Vec<(String, i64)> {
    events
        .iter()
        .filter_map(|e| {
            let (op, row) = match &e.kind {
                EventKind::Read { after, .. } => ("r", after),
                EventKind::Insert { after, .. } => ("c", after),
                EventKind::Update { after, .. } => ("u", after),
                EventKind::Delete { before, .. } => ("d", before),
                _ => return None,
            };
            let id = match row.first() {
                Some(Value::Int32(i)) => i64::from(*i),
                Some(Value::Int64(i)) => *i,
                other => panic!("{other:?}"),
            };
            Some((op.to_owned(), id))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_then_resume_exactly() {
    let db = mariadb().create_database("mysrc").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(8,2), qty TINYINT UNSIGNED, at DATETIME(3), ts TIMESTAMP(6) NULL, kind ENUM('a','b'), tags SET('x','y','z'), doc JSON);
         INSERT INTO items VALUES (1, 'one', 1.50, 200, '2024-05-01 10:00:00.123', '2024-05-01 10:00:00.5', 'b', 'x,z', '{\"k\": 1}'), (2, 'two', NULL, 0, NULL, NULL, NULL, '', NULL);",
    )
    .await
    .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    let sink = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline::new(
        "my1",
        source(db.name(), 5401, &[]),
        sink.clone(),
        offsets.clone(),
        PipelineConfig::default(),
    );
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    let snapshot_done = wait_for(Duration::from_secs(30), || {
        let sink = sink.clone();
        async move { row_ops(&sink.durable()).len() >= 2 }
    })
    .await;
    assert!(
        snapshot_done,
        "snapshot rows: {:?}",
        row_ops(&sink.durable())
    );
    // Streaming: one multi-statement transaction and single statements.
    conn.query_drop(
        "START TRANSACTION; INSERT INTO items (id, name, qty, kind, tags) VALUES (3, 'three', 255, 'a', 'y'); UPDATE items SET name = 'uno' WHERE id = 1; COMMIT;
         DELETE FROM items WHERE id = 2;",
    )
    .await
    .unwrap();
    let streamed = wait_for(Duration::from_secs(30), || {
        let sink = sink.clone();
        async move { row_ops(&sink.durable()).len() >= 5 }
    })
    .await;
    assert!(streamed, "{:?}", row_ops(&sink.durable()));
    let events = sink.durable();
    assert_eq!(
        row_ops(&events),
        [("r", 1), ("r", 2), ("c", 3), ("u", 1), ("d", 2)]
            .map(|(o, i)| (o.to_owned(), i))
            .to_vec()
    );
    // Values of the snapshot row: types as Debezium maps them.
    let EventKind::Read { after, table, .. } = &events[0].kind else {
        panic!()
    };
    assert_eq!(table.id.to_string(), format!("{}.items", db.name()));
    assert_eq!(after[1], Value::String("one".into()));
    assert_eq!(after[2], Value::Decimal(outflow_core::Decimal::new(150, 2)));
    assert_eq!(after[3], Value::Int16(200));
    assert_eq!(after[4], Value::Timestamp(1_714_557_600_123_000));
    assert_eq!(after[5], Value::TimestampTz(1_714_557_600_500_000));
    assert_eq!(after[6], Value::Enum("b".into()));
    assert_eq!(after[7], Value::String("x,z".into()));
    assert!(
        matches!(&after[8], Value::Json(j) if j.replace(' ', "") == "{\"k\":1}"),
        "{:?}",
        after[8]
    );
    // The streamed insert decodes the same types from the binlog.
    let insert = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Insert { .. }))
        .unwrap();
    let EventKind::Insert { after, .. } = &insert.kind else {
        panic!()
    };
    assert_eq!(after[3], Value::Int16(255));
    assert_eq!(after[6], Value::Enum("a".into()));
    assert_eq!(after[7], Value::String("y".into()));
    let SourcePosition::Binlog(p) = &insert.position else {
        panic!()
    };
    assert!(p.gtid.is_some() && !p.snapshot && p.event == 1);
    // Transaction boundaries around the two-statement transaction.
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e.kind {
            EventKind::Begin(_) => "begin",
            EventKind::Commit(_) => "commit",
            _ => "row",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "row", "row", "begin", "row", "row", "commit", "begin", "row", "commit"
        ]
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();

    // Written while stopped; a new run resumes after the stored offset, exactly.
    conn.query_drop("INSERT INTO items (id) VALUES (4); UPDATE items SET qty = 1 WHERE id = 3;")
        .await
        .unwrap();
    let sink2 = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Pipeline::new(
            "my1",
            source(db.name(), 5401, &[]),
            sink2.clone(),
            offsets.clone(),
            PipelineConfig::default(),
        )
        .run(shutdown.clone()),
    );
    let resumed = wait_for(Duration::from_secs(30), || {
        let sink = sink2.clone();
        async move { row_ops(&sink.durable()).len() >= 2 }
    })
    .await;
    assert!(resumed, "{:?}", row_ops(&sink2.durable()));
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(
        row_ops(&sink2.durable()),
        [("c", 4), ("u", 3)]
            .map(|(o, i)| (o.to_owned(), i))
            .to_vec()
    );
}
