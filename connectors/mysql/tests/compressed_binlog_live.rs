//! MariaDB with `log_bin_compress=ON`: compressed rows and query events (types 165–171)
//! are decoded, never skipped; snapshot and stream deliver every row.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use outflow_core::{
    EventKind, MemoryOffsetStore, MemorySink, MemorySinkMode, Pipeline, PipelineConfig, Value,
};
use outflow_testkit::{dedicated_mariadb, wait_for};
use tokio_util::sync::CancellationToken;

use crate::mariadb_live::{row_ops, source_on};

/// The binlog's event types since `from` (file, pos), by name, with their counts.
async fn event_types(
    conn: &mut mysql_async::Conn,
    from: &(String, u64),
) -> std::collections::BTreeMap<String, usize> {
    let mut types = std::collections::BTreeMap::new();
    let files: Vec<(String, u64)> = conn.query("SHOW BINARY LOGS").await.unwrap();
    for (file, _) in files.iter().filter(|(f, _)| f >= &from.0) {
        let query = if *file == from.0 {
            format!("SHOW BINLOG EVENTS IN '{file}' FROM {}", from.1)
        } else {
            format!("SHOW BINLOG EVENTS IN '{file}'")
        };
        let rows: Vec<mysql_async::Row> = conn.query(query).await.unwrap();
        for row in rows {
            let kind: String = row.get("Event_type").unwrap();
            *types.entry(kind).or_insert(0) += 1;
        }
    }
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_binlog_events_deliver_every_row() {
    let server = dedicated_mariadb();
    let mut root = server.connect(None).await;
    root.query_drop("SET GLOBAL log_bin_compress = ON; SET GLOBAL log_bin_compress_min_len = 10")
        .await
        .unwrap();
    let db = server.create_database("compressed").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(200), body TEXT, price DECIMAL(10,2));",
    )
    .await
    .unwrap();
    let mut insert = String::from("INSERT INTO t VALUES ");
    let values: Vec<String> = (1..=50)
        .map(|i| {
            format!(
                "({i}, 'snapshot row {i} {}', REPEAT('s', {i}), {i}.25)",
                "é".repeat(30)
            )
        })
        .collect();
    insert.push_str(&values.join(", "));
    conn.query_drop(insert).await.unwrap();
    let (file, pos): (String, u64) = {
        let row: mysql_async::Row = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .unwrap();
        (row.get(0).unwrap(), row.get(1).unwrap())
    };

    let offsets = Arc::new(MemoryOffsetStore::new());
    let sink = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Pipeline::new(
            "compressed",
            source_on(server, db.name(), 5501, &[]),
            sink.clone(),
            offsets.clone(),
            PipelineConfig::default(),
        )
        .run(shutdown.clone()),
    );
    let snapshot = wait_for(Duration::from_secs(60), || {
        let sink = sink.clone();
        async move { row_ops(&sink.durable()).len() >= 50 }
    })
    .await;
    assert!(
        snapshot,
        "snapshot rows: {}",
        row_ops(&sink.durable()).len()
    );

    // Stream: multi-row inserts, updates, deletes, a DDL (a compressed query event),
    // then rows of the new shape.
    for batch in 0..4 {
        let values: Vec<String> = (0..25)
            .map(|i| {
                let id = 100 + batch * 25 + i;
                format!(
                    "({id}, 'streamed row {id} {}', REPEAT('x', {id}), {id}.5)",
                    "ü".repeat(20)
                )
            })
            .collect();
        conn.query_drop(format!("INSERT INTO t VALUES {}", values.join(", ")))
            .await
            .unwrap();
    }
    conn.query_drop(
        "UPDATE t SET name = CONCAT(name, ' updated with a long enough suffix') WHERE id <= 10;
         DELETE FROM t WHERE id BETWEEN 11 AND 20;
         ALTER TABLE t ADD COLUMN note VARCHAR(100) NOT NULL DEFAULT 'a default note for every row';
         INSERT INTO t (id, name, body, price, note) VALUES (500, 'after the alter', REPEAT('y', 300), 1.00, 'a note long enough to compress');",
    )
    .await
    .unwrap();
    let expected = 50 + 100 + 10 + 10 + 1;
    let streamed = wait_for(Duration::from_secs(60), || {
        let sink = sink.clone();
        async move { row_ops(&sink.durable()).len() >= expected }
    })
    .await;
    let events = sink.durable();
    let ops = row_ops(&events);
    assert!(streamed, "{} of {expected} row events arrived", ops.len());
    shutdown.cancel();
    task.await.unwrap().unwrap();

    // The binlog really holds compressed events (else this test tests nothing).
    let types = event_types(&mut conn, &(file, pos)).await;
    for kind in [
        "Write_rows_compressed_v1",
        "Update_rows_compressed_v1",
        "Delete_rows_compressed_v1",
        "Query_compressed",
    ] {
        assert!(
            types.contains_key(kind),
            "no {kind} in the binlog: {types:?}"
        );
    }

    let count = |op: &str| ops.iter().filter(|(o, _)| o == op).count();
    assert_eq!(
        (count("r"), count("c"), count("u"), count("d")),
        (50, 101, 10, 10),
        "first events: {:?}",
        ops.iter().take(5).collect::<Vec<_>>()
    );
    // Values decode from the inflated row images.
    let last = events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::Insert { after, .. } => Some(after.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last[0], Value::Int32(500));
    assert_eq!(last[1], Value::String("after the alter".into()));
    assert_eq!(last[2], Value::String("y".repeat(300)));
    assert_eq!(
        last[4],
        Value::String("a note long enough to compress".into())
    );
    let first_insert = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Insert { after, .. } => Some(after.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        first_insert[1],
        Value::String(format!("streamed row 100 {}", "ü".repeat(20)))
    );
    let schema_changes = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::SchemaChange(_)))
        .count();
    assert!(schema_changes >= 1, "the compressed ALTER TABLE was seen");
    root.query_drop("SET GLOBAL log_bin_compress = OFF")
        .await
        .unwrap();
}
