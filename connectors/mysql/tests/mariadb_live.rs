//! MariaDB end to end through the core pipeline: snapshot, streaming of inserts,
//! updates and deletes with transaction boundaries, resume after a stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use outflow_core::{
    ChangeEvent, EventKind, MemoryOffsetStore, MemorySink, MemorySinkMode, OffsetStore, Pipeline,
    PipelineConfig, SourcePosition, Value,
};
use outflow_mysql::position::BinlogPosition;
use outflow_mysql::{MySqlConfig, MySqlSource};
use outflow_testkit::{
    CDC_PASSWORD, CDC_USER, MariaDbServer, dedicated_mariadb, mariadb, wait_for,
};
use tokio_util::sync::CancellationToken;

fn source(database: &str, server_id: u32, extra: &[(&str, &str)]) -> MySqlSource {
    source_on(mariadb(), database, server_id, extra)
}

pub(crate) fn source_on(
    server: &MariaDbServer,
    database: &str,
    server_id: u32,
    extra: &[(&str, &str)],
) -> MySqlSource {
    let port = server.port().to_string();
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

pub(crate) fn row_ops(events: &[ChangeEvent]) -> Vec<(String, i64)> {
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
    // MariaDB's JSON is LONGTEXT: a plain string, as Debezium's MariaDB connector writes it.
    assert!(
        matches!(&after[8], Value::String(j) if j.replace(' ', "") == "{\"k\":1}"),
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
    let Some(p) = BinlogPosition::of(&insert.position) else {
        panic!()
    };
    assert!(p.gtid.is_some() && !p.snapshot && p.event == 1);
    // Transaction boundaries around the two-statement transaction.
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e.kind {
            EventKind::Begin(_) => "begin",
            EventKind::Commit(_) => "commit",
            EventKind::Heartbeat => "marker",
            _ => "row",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "row", "row", "marker", "begin", "row", "row", "commit", "begin", "row", "commit"
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

/// Every mapped type, one row read by the snapshot (binary protocol) and the same row
/// written again after it (binlog): both decode to the same values, and to the expected
/// ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_decodes_the_same_from_snapshot_and_binlog() {
    let db = mariadb().create_database("mytypes").await;
    let mut conn = db.connect().await;
    let columns = "id INT PRIMARY KEY, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, su SMALLINT UNSIGNED, \
        bi BIGINT, bu BIGINT UNSIGNED, dbl DOUBLE, fl FLOAT, f2 FLOAT(7,2), bin BINARY(4), \
        vb VARBINARY(10), bl BLOB, txt TEXT, lat VARCHAR(10) CHARACTER SET latin1, y YEAR, \
        b1 BIT(1), b12 BIT(12), g POINT, dt DATE, tm TIME(6), ip INET6, u UUID, t2 TIME(2)";
    let values = "-8388608, 16777215, 65535, -9223372036854775808, 9223372036854775807, 1.5, 2.5, \
        3.25, 'ab', x'00ff', x'010203', 'long text', x'636166e9', 2024, b'1', b'101010101010', \
        ST_GeomFromText('POINT(1 2)'), '2024-02-29', '-838:59:59.000000', '::ffff:1.2.3.4', \
        '123e4567-e89b-12d3-a456-426614174000', '-00:00:01.50'";
    conn.query_drop(format!(
        "CREATE TABLE t ({columns}); INSERT INTO t VALUES (1, {values})"
    ))
    .await
    .unwrap();
    let sink = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Pipeline::new(
            "types",
            source(db.name(), 5402, &[]),
            sink.clone(),
            Arc::new(MemoryOffsetStore::new()),
            PipelineConfig::default(),
        )
        .run(shutdown.clone()),
    );
    assert!(
        wait_for(Duration::from_secs(30), || {
            let sink = sink.clone();
            async move { !row_ops(&sink.durable()).is_empty() }
        })
        .await
    );
    conn.query_drop(format!("INSERT INTO t VALUES (2, {values})"))
        .await
        .unwrap();
    let task_ref = &task;
    let streamed = wait_for(Duration::from_secs(30), || {
        let sink = sink.clone();
        async move { row_ops(&sink.durable()).len() >= 2 || task_ref.is_finished() }
    })
    .await;
    if !streamed || task.is_finished() {
        shutdown.cancel();
        panic!("the binlog row did not arrive: {:?}", task.await);
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let events = sink.durable();
    let rows: Vec<&Vec<Value>> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Read { after, .. } | EventKind::Insert { after, .. } => Some(after),
            _ => None,
        })
        .collect();
    let (snapshot, streamed) = (&rows[0][1..], &rows[1][1..]);
    let names: Vec<&str> = columns
        .split(", ")
        .skip(1)
        .map(|c| c.split_whitespace().next().unwrap())
        .collect();
    for ((name, a), b) in names.iter().zip(snapshot).zip(streamed) {
        assert_eq!(a, b, "column {name}: snapshot {a:?} vs binlog {b:?}");
    }
    let expected = [
        Value::Int32(-8_388_608),
        Value::Int32(16_777_215),
        Value::Int32(65_535),
        Value::Int64(i64::MIN),
        Value::Int64(i64::MAX),
        Value::Float64(1.5),
        Value::Float32(2.5),
        Value::Float64(3.25),
        Value::Bytes(b"ab\0\0".to_vec()),
        Value::Bytes(vec![0, 255]),
        Value::Bytes(vec![1, 2, 3]),
        Value::String("long text".into()),
        Value::String("café".into()),
        Value::Int32(2024),
        Value::Bool(true),
        Value::Bytes(vec![0xaa, 0x0a]),
    ];
    for ((name, got), want) in names.iter().zip(snapshot).zip(&expected) {
        assert_eq!(got, want, "column {name}");
    }
    let at = |name: &str| &snapshot[names.iter().position(|n| *n == name).unwrap()];
    assert!(
        matches!(at("g"), Value::Geometry { srid: None, wkb, point: Some((x, y)) } if wkb.len() == 21 && *x == 1.0 && *y == 2.0),
        "{:?}",
        at("g")
    );
    assert_eq!(at("dt"), &Value::Date(19_782));
    assert_eq!(
        at("tm"),
        &Value::Time(-(838 * 3600 + 59 * 60 + 59) * 1_000_000)
    );
    // A negative TIME(2) with a fraction: mysql_common 0.37 gets it wrong; ours does not.
    assert_eq!(at("t2"), &Value::Time(-1_500_000));
    assert_eq!(at("ip"), &Value::String("::ffff:1.2.3.4".into()));
    assert_eq!(
        at("u"),
        &Value::Uuid([
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x00
        ])
    );
}

/// DDL while streaming: each ALTER gives the table a new schema version and a
/// schema-change event carrying the statement; rows after it have the new shape; DROP
/// ends with a drop event. (Each step waits for the previous one: shapes are read from
/// information_schema when the DDL is read, see docs/architecture.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_while_streaming_changes_the_shape_with_schema_change_events() {
    let db = mariadb().create_database("myddl").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT); INSERT INTO t VALUES (1, 10)")
        .await
        .unwrap();
    let sink = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Pipeline::new(
            "ddl",
            source(db.name(), 5403, &[]),
            sink.clone(),
            Arc::new(MemoryOffsetStore::new()),
            PipelineConfig::default(),
        )
        .run(shutdown.clone()),
    );
    let mut expected_events = 0;
    for (statement, new_events) in [
        ("SELECT 1", 1),
        ("INSERT INTO t VALUES (2, 20)", 3),
        ("ALTER TABLE t ADD COLUMN b VARCHAR(10)", 1),
        ("INSERT INTO t VALUES (3, 30, 'x')", 3),
        ("ALTER TABLE t DROP COLUMN a", 1),
        ("INSERT INTO t VALUES (4, 'y')", 3),
        ("DROP TABLE t", 1),
    ] {
        conn.query_drop(statement).await.unwrap();
        expected_events += new_events;
        let arrived = wait_for(Duration::from_secs(30), || {
            let sink = sink.clone();
            async move { sink.durable().len() >= expected_events }
        })
        .await;
        assert!(arrived, "after {statement}: {:?}", sink.durable().len());
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let summary: Vec<String> = sink
        .durable()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Read { table, after, .. } | EventKind::Insert { table, after } => {
                Some(format!("row v{} {}", table.version.0, after.len()))
            }
            EventKind::SchemaChange(change) => Some(format!(
                "{:?} v{} {} {}",
                change.kind,
                change.table.version.0,
                change.table.columns.len(),
                change.ddl.as_deref().unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        summary,
        [
            "row v1 2",
            "row v1 2",
            "Alter v2 3 ALTER TABLE t ADD COLUMN b VARCHAR(10)",
            "row v2 3",
            "Alter v3 2 ALTER TABLE t DROP COLUMN a",
            "row v3 2",
            "Drop v3 2 DROP TABLE `t` /* generated by server */",
        ]
    );
}

/// DDL written while the connector was stopped: on restart the old rows are decoded with
/// the shape their TABLE_MAP describes, not with today's table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_later_ddl_decode_with_their_own_shape() {
    let db = mariadb().create_database("myhist").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, a INT); INSERT INTO t VALUES (1, 10)")
        .await
        .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    let run = |sink: MemorySink| {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Pipeline::new(
                "hist",
                source(db.name(), 5404, &[]),
                sink,
                offsets.clone(),
                PipelineConfig::default(),
            )
            .run(shutdown.clone()),
        );
        (shutdown, task)
    };
    let first = MemorySink::new(MemorySinkMode::Immediate);
    let (shutdown, task) = run(first.clone());
    assert!(
        wait_for(Duration::from_secs(30), || {
            let sink = first.clone();
            async move { !row_ops(&sink.durable()).is_empty() }
        })
        .await
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
    conn.query_drop(
        "INSERT INTO t VALUES (2, 20); ALTER TABLE t ADD COLUMN b VARCHAR(10); INSERT INTO t VALUES (3, 30, 'x'); \
         ALTER TABLE t DROP COLUMN a; INSERT INTO t VALUES (4, 'y');",
    )
    .await
    .unwrap();
    let second = MemorySink::new(MemorySinkMode::Immediate);
    let (shutdown, task) = run(second.clone());
    let arrived = wait_for(Duration::from_secs(30), || {
        let sink = second.clone();
        async move { row_ops(&sink.durable()).len() >= 3 }
    })
    .await;
    shutdown.cancel();
    let outcome = task.await.unwrap();
    assert!(arrived, "{outcome:?} {:?}", row_ops(&second.durable()));
    let rows: Vec<(Vec<String>, Vec<Value>)> = second
        .durable()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Insert { table, after } => Some((
                table.columns.iter().map(|c| c.name.clone()).collect(),
                after.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                vec!["id".into(), "a".into()],
                vec![Value::Int32(2), Value::Int32(20)]
            ),
            (
                vec!["id".into(), "a".into(), "b".into()],
                vec![Value::Int32(3), Value::Int32(30), Value::String("x".into())]
            ),
            (
                vec!["id".into(), "b".into()],
                vec![Value::Int32(4), Value::String("y".into())]
            ),
        ]
    );
}

/// While nothing changes, heartbeats arrive at the last position and keep increasing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_while_idle() {
    let db = mariadb().create_database("myhb").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let sink = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Pipeline::new(
            "hb",
            source(db.name(), 5405, &[("heartbeat.interval.ms", "100")]),
            sink.clone(),
            Arc::new(MemoryOffsetStore::new()),
            PipelineConfig::default(),
        )
        .run(shutdown.clone()),
    );
    // A change first, so there is a position to beat at.
    assert!(
        wait_for(Duration::from_secs(30), || {
            let sink = sink.clone();
            async move { !row_ops(&sink.durable()).is_empty() }
        })
        .await
    );
    conn.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    let beats = wait_for(Duration::from_secs(30), || {
        let sink = sink.clone();
        async move {
            sink.durable()
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Heartbeat))
                .count()
                >= 3
        }
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(beats);
}

/// Runs a pipeline from `offsets` until `done` holds for its durable events; returns them.
pub(crate) async fn drain_until(
    name: &str,
    source: MySqlSource,
    offsets: Arc<MemoryOffsetStore>,
    done: impl Fn(&[ChangeEvent]) -> bool,
) -> Vec<ChangeEvent> {
    let sink = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Pipeline::new(
            name,
            source,
            sink.clone(),
            offsets,
            PipelineConfig::default(),
        )
        .run(shutdown.clone()),
    );
    let reached = wait_for(Duration::from_secs(30), || {
        let events = sink.durable();
        let ok = done(&events);
        async move { ok }
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(reached, "{:?}", row_ops(&sink.durable()));
    sink.durable()
}

fn binlog_position(event: &ChangeEvent) -> BinlogPosition {
    match BinlogPosition::of(&event.position) {
        Some(p) => p,
        None => panic!("{:?}", event.position),
    }
}

/// A stop inside a multi-statement transaction, inside a multi-row event: resuming from
/// the stored position by GTID (MariaDB `@slave_connect_state`) and by file/pos gives
/// exactly the events after it, with the same positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_inside_a_transaction_by_gtid_and_by_file_position() {
    let db = mariadb().create_database("myresume").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE TABLE other (id INT PRIMARY KEY);
         INSERT INTO t VALUES (0, 0);",
    )
    .await
    .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    let all_read = |events: &[ChangeEvent]| row_ops(events).contains(&("r".to_owned(), 0));
    drain_until(
        "res",
        source(db.name(), 5411, &[]),
        offsets.clone(),
        all_read,
    )
    .await;
    conn.query_drop(
        "START TRANSACTION;
         INSERT INTO t VALUES (1, 1), (2, 2), (3, 3);
         INSERT INTO other VALUES (1);
         UPDATE t SET v = v + 10 WHERE id IN (1, 2, 3);
         INSERT INTO t VALUES (4, 4);
         COMMIT;
         INSERT INTO t VALUES (5, 5);",
    )
    .await
    .unwrap();
    let last = |e: &[ChangeEvent]| {
        row_ops(e).contains(&("c".to_owned(), 5))
            && matches!(e.last().map(|e| &e.kind), Some(EventKind::Commit(_)))
    };
    let reference = drain_until("res", source(db.name(), 5411, &[]), offsets.clone(), last).await;
    assert_eq!(
        row_ops(&reference),
        // `other`'s row (id 1) between the insert and the update.
        [
            ("c", 1),
            ("c", 2),
            ("c", 3),
            ("c", 1),
            ("u", 1),
            ("u", 2),
            ("u", 3),
            ("c", 4),
            ("c", 5)
        ]
        .map(|(o, i)| (o.to_owned(), i))
        .to_vec()
    );
    // Every streamed position knows the GTIDs before its transaction.
    assert!(
        reference
            .iter()
            .all(|e| binlog_position(e).gtid_set.is_some())
    );
    let first_txn = binlog_position(&reference[0]);
    let second = binlog_position(reference.last().unwrap());
    assert_ne!(first_txn.gtid_set, second.gtid_set);
    // Cut after: the BEGIN, the second row of the first rows event, the `other` table's
    // event, the second row of the update event, the COMMIT.
    for cut in [0, 2, 4, 6, 9] {
        for by_gtid in [true, false] {
            let mut stored = binlog_position(&reference[cut]);
            if !by_gtid {
                stored.gtid_set = None;
            }
            let offsets = Arc::new(MemoryOffsetStore::new());
            offsets
                .commit("res", &SourcePosition::from(stored))
                .await
                .unwrap();
            let source = source(db.name(), 5411, &[]);
            let metrics = source.metrics();
            let resumed = drain_until("res", source, offsets, last).await;
            let by =
                |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(
                (
                    by(&metrics.streams_by_gtid),
                    by(&metrics.streams_by_position)
                ),
                if by_gtid { (1, 0) } else { (0, 1) }
            );
            let positions = |events: &[ChangeEvent]| -> Vec<BinlogPosition> {
                events.iter().map(binlog_position).collect()
            };
            assert_eq!(
                positions(&resumed),
                positions(&reference[cut + 1..]),
                "cut {cut}, by gtid {by_gtid}"
            );
            assert_eq!(row_ops(&resumed), row_ops(&reference[cut + 1..]));
        }
    }
}

/// Binlogs purged past the stored offset: a definite error that says so and names
/// `snapshot.mode=when_needed`, for a GTID offset and a file/pos offset alike; with
/// `when_needed` a new snapshot is taken and streaming goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_binlog_is_a_definite_error_unless_when_needed() {
    let server = dedicated_mariadb();
    let db = server.create_database("mypurge").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    let source = || source_on(server, db.name(), 5421, &[]);
    drain_until("purge", source(), offsets.clone(), |e| {
        row_ops(e).contains(&("r".to_owned(), 1))
    })
    .await;
    conn.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    let streamed = drain_until("purge", source(), offsets.clone(), |e| {
        row_ops(e).contains(&("c".to_owned(), 2))
    })
    .await;
    let stored = binlog_position(streamed.last().unwrap());
    assert!(stored.gtid_set.is_some());
    // Written while stopped, then every binlog the offset needs is purged.
    for statement in [
        "INSERT INTO t VALUES (3)",
        "FLUSH BINARY LOGS",
        "INSERT INTO t VALUES (4)",
        "FLUSH BINARY LOGS",
    ] {
        conn.query_drop(statement).await.unwrap();
    }
    let (current,): (String,) = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|row: mysql_async::Row| (row.get::<String, _>(0).unwrap(),))
        .unwrap();
    // PURGE skips files still in use (a dump thread that is ending, the binlog
    // checkpoint not yet past them): repeat until they are gone.
    let purged = wait_for(Duration::from_secs(30), || {
        let current = current.clone();
        async move {
            let mut admin = server.connect(None).await;
            admin
                .query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
                .await
                .unwrap();
            let first: Option<mysql_async::Row> =
                admin.query_first("SHOW BINARY LOGS").await.unwrap();
            first.and_then(|r| r.get::<String, _>(0)) == Some(current)
        }
    })
    .await;
    assert!(purged);
    for by_gtid in [true, false] {
        let mut position = stored.clone();
        if !by_gtid {
            position.gtid_set = None;
        }
        let offsets = Arc::new(MemoryOffsetStore::new());
        offsets
            .commit("purge", &SourcePosition::from(position))
            .await
            .unwrap();
        let sink = MemorySink::new(MemorySinkMode::Immediate);
        let result = Pipeline::new(
            "purge",
            source(),
            sink.clone(),
            offsets,
            PipelineConfig::default(),
        )
        .run(CancellationToken::new())
        .await;
        let error = result.expect_err("a purged binlog must stop the connector");
        let text = error.to_string();
        assert!(
            text.contains("purged") && text.contains("snapshot.mode=when_needed"),
            "by gtid {by_gtid}: {text}"
        );
        assert!(sink.durable().is_empty());
    }
    // when_needed: a new snapshot (every row, as reads), then streaming.
    let offsets = Arc::new(MemoryOffsetStore::new());
    offsets
        .commit("purge", &SourcePosition::from(stored.clone()))
        .await
        .unwrap();
    let when_needed = || source_on(server, db.name(), 5421, &[("snapshot.mode", "when_needed")]);
    let read = drain_until("purge", when_needed(), offsets.clone(), |e| {
        row_ops(e).len() >= 4
    })
    .await;
    assert_eq!(
        row_ops(&read),
        [("r", 1), ("r", 2), ("r", 3), ("r", 4)]
            .map(|(o, i)| (o.to_owned(), i))
            .to_vec()
    );
    conn.query_drop("INSERT INTO t VALUES (5)").await.unwrap();
    let after = drain_until("purge", when_needed(), offsets, |e| !row_ops(e).is_empty()).await;
    assert_eq!(row_ops(&after), [("c".to_owned(), 5)]);
}

type State = BTreeMap<(String, i64), i64>;

/// Applies row events to a (table, first column) → last column map.
fn apply(state: &mut State, events: &[ChangeEvent]) {
    for e in events {
        let (table, row, delete) = match &e.kind {
            EventKind::Read { table, after, .. }
            | EventKind::Insert { table, after, .. }
            | EventKind::Update { table, after, .. } => (table, after, false),
            EventKind::Delete { table, before } => (table, before, true),
            _ => continue,
        };
        let int = |v: &Value| match v {
            Value::Int32(i) => i64::from(*i),
            other => panic!("{other:?}"),
        };
        let key = (table.id.to_string(), int(&row[0]));
        if delete {
            state.remove(&key);
        } else {
            state.insert(key, int(row.last().unwrap()));
        }
    }
}

async fn database_state(conn: &mut mysql_async::Conn, database: &str) -> State {
    let mut state = State::new();
    for table in ["a", "b", "c"] {
        let rows: Vec<(i32, i32)> = conn
            .query(format!("SELECT id, v FROM {table}"))
            .await
            .unwrap();
        for (id, v) in rows {
            state.insert((format!("{database}.{table}"), i64::from(id)), i64::from(v));
        }
    }
    state
}

/// Snapshot reads: key ranges on 4 connections give the same events as one; a snapshot
/// stopped inside a table continues after its last batch in a new view, with changes
/// made meanwhile neither lost nor doubled (the stream drops what the new view already
/// shows); a restart inside that window filters the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_snapshot_and_resume_inside_it() {
    let db = mariadb().create_database("mysnap").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL);
         CREATE TABLE b (id INT NOT NULL, code VARCHAR(20) PRIMARY KEY, v INT NOT NULL);
         CREATE TABLE c (id INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO a SELECT seq, seq FROM seq_1_to_3000;
         INSERT INTO b SELECT seq, CONCAT('k', LPAD(seq, 5, '0')), seq FROM seq_1_to_500;
         INSERT INTO c SELECT seq, seq FROM seq_1_to_2000;
         ANALYZE TABLE a, b, c;",
    )
    .await
    .unwrap();
    let total = 5500;
    let all_read = move |e: &[ChangeEvent]| {
        e.iter()
            .any(|e| BinlogPosition::of(&e.position).is_some_and(|p| p.snapshot && p.row == 1))
            && row_ops(e).len() >= total
    };
    let one = drain_until(
        "snap1",
        source(db.name(), 5431, &[]),
        Arc::new(MemoryOffsetStore::new()),
        all_read,
    )
    .await;
    let threads = [
        ("snapshot.max.threads", "4"),
        ("snapshot.fetch.size", "100"),
    ];
    let parallel = source(db.name(), 5432, &threads);
    let metrics = parallel.metrics();
    let four = drain_until(
        "snap4",
        parallel,
        Arc::new(MemoryOffsetStore::new()),
        all_read,
    )
    .await;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    // a and c are cut into key ranges; b (a text key) is read whole.
    assert_eq!(load(&metrics.snapshot_connections), 4);
    assert!(
        load(&metrics.snapshot_units) > 10,
        "{}",
        load(&metrics.snapshot_units)
    );
    assert_eq!(row_ops(&one).len(), total);
    assert_eq!(row_ops(&one), row_ops(&four));
    let positions = |events: &[ChangeEvent]| -> Vec<(u64, u32)> {
        events
            .iter()
            .map(|e| {
                let p = binlog_position(e);
                (p.event, p.row)
            })
            .collect()
    };
    assert_eq!(positions(&one), positions(&four));

    // Stop after the second batch (inside table a): its last row carries the reads.
    let cut = one
        .iter()
        .enumerate()
        .filter(|(_, e)| binlog_position(e).snapshot_reads.is_some())
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    let stored = binlog_position(&one[cut]);
    let reads = stored.snapshot_reads.clone().unwrap();
    assert_eq!(reads.segments.len(), 1);
    assert_eq!(reads.segments[0].table, "a");
    assert_eq!(reads.segments[0].key, Some(vec!["2048".to_owned()]));
    // Changes while stopped: to rows read before the stop, to rows not yet read, in
    // all three tables; then the resumed snapshot opens its view, then more changes.
    conn.query_drop(
        "UPDATE a SET v = v + 100000 WHERE id IN (1, 2900, 2999);
         DELETE FROM a WHERE id IN (3, 2500);
         INSERT INTO a VALUES (5000, 5000);
         UPDATE b SET v = -1 WHERE id = 7;
         DELETE FROM c WHERE id = 1;",
    )
    .await
    .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    offsets
        .commit("snapr", &SourcePosition::from(stored))
        .await
        .unwrap();
    let resumed = drain_until(
        "snapr",
        source(db.name(), 5433, &threads),
        offsets.clone(),
        |e| {
            e.iter()
                .any(|e| BinlogPosition::of(&e.position).is_some_and(|p| p.snapshot && p.row == 1))
        },
    )
    .await;
    // Rows read before the stop are not read again.
    let reads_of = |events: &[ChangeEvent]| -> Vec<(String, i64)> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Read { table, after, .. } => match after[0] {
                    Value::Int32(id) => Some((table.id.to_string(), i64::from(id))),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let before_stop = reads_of(&one[..=cut]);
    let after_stop = reads_of(&resumed);
    let again = after_stop
        .iter()
        .filter(|r| before_stop.contains(r))
        .count();
    assert_eq!(again, 0, "rows read twice");
    assert_eq!(
        before_stop.len() + after_stop.len(),
        total - 2 + 1,
        "every row read once (a.2500 and c.1 deleted before their read, a.5000 inserted)"
    );
    conn.query_drop("UPDATE a SET v = 7 WHERE id = 2; INSERT INTO c VALUES (9000, 9000);")
        .await
        .unwrap();
    let expected = database_state(&mut conn, db.name()).await;
    let mut state = State::new();
    apply(&mut state, &one[..=cut]);
    apply(&mut state, &resumed);
    let tail = drain_until("snapr", source(db.name(), 5433, &threads), offsets, |e| {
        row_ops(e).contains(&("c".to_owned(), 9000))
    })
    .await;
    apply(&mut state, &tail);
    assert_eq!(state, expected);
    // The changes while stopped to rows read before the stop came through the stream;
    // the others are in what the new view read.
    let streamed: Vec<(String, i64)> = row_ops(&resumed)
        .into_iter()
        .chain(row_ops(&tail))
        .filter(|(op, _)| op != "r")
        .collect();
    for op in [("u", 1), ("u", 2), ("d", 3)] {
        assert!(
            streamed.contains(&(op.0.to_owned(), op.1)),
            "{op:?} in {streamed:?}"
        );
    }
    for op in [("u", 2900), ("u", 2999), ("d", 2500), ("c", 5000)] {
        assert!(
            !streamed.contains(&(op.0.to_owned(), op.1)),
            "{op:?} in {streamed:?}"
        );
    }
    // Positions inside the window carry the reads, and a restart there filters the same.
    let combined: Vec<ChangeEvent> = resumed.iter().chain(&tail).cloned().collect();
    let in_window = combined
        .iter()
        .position(|e| {
            matches!(e.kind, EventKind::Update { .. })
                && binlog_position(e).snapshot_reads.is_some()
        })
        .expect("an update inside the window");
    let offsets = Arc::new(MemoryOffsetStore::new());
    offsets
        .commit("snapw", &combined[in_window].position)
        .await
        .unwrap();
    let again = drain_until("snapw", source(db.name(), 5434, &threads), offsets, |e| {
        row_ops(e).contains(&("c".to_owned(), 9000))
    })
    .await;
    assert_eq!(row_ops(&again), row_ops(&combined[in_window + 1..]));
}

/// Snapshot and stream hand over without gap or overlap while writes go on: ten runs
/// (one and two snapshot connections), each with writes during the snapshot; the events
/// rebuild the table exactly, no row is read twice, no insert finds its row present and
/// no update or delete finds it missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_to_stream_handover_under_writes_ten_runs() {
    for run in 0..10u32 {
        let threads = if run % 2 == 0 { "1" } else { "2" };
        handover_under_writes(
            mariadb(),
            run,
            "myhand",
            &[("snapshot.max.threads", threads)],
        )
        .await;
    }
}

/// A 20,000-row snapshot while 600 writes run: the events rebuild the table, with no
/// row read twice, no insert of a present row and no change of a missing one.
async fn handover_under_writes(
    server: &'static MariaDbServer,
    run: u32,
    prefix: &str,
    extra: &[(&str, &str)],
) {
    let db = server.create_database(prefix).await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL);
         CREATE TABLE b (id INT PRIMARY KEY, v INT NOT NULL);
         CREATE TABLE c (id INT PRIMARY KEY, v INT NOT NULL);
         INSERT INTO a SELECT seq, seq FROM seq_1_to_20000;",
    )
    .await
    .unwrap();
    let mut writer = db.connect().await;
    let writes = tokio::spawn(async move {
        let mut x: u64 = 0x9E37_79B9 ^ u64::from(run);
        for i in 0..600u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 25_000) as u32 + 1;
            let statement = match i % 3 {
                0 => format!("INSERT IGNORE INTO a VALUES ({id}, {i})"),
                1 => format!("UPDATE a SET v = v + 1 WHERE id = {id}"),
                _ => format!("DELETE FROM a WHERE id = {id}"),
            };
            writer.query_drop(statement).await.unwrap();
        }
        writer
            .query_drop("INSERT INTO a VALUES (999999, 0)")
            .await
            .unwrap();
    });
    let mut props = vec![
        ("snapshot.fetch.size", "1000"),
        // Plain TCP: TLS handshakes would start the snapshot after the writer is done,
        // and the point is writes during the snapshot.
        ("database.ssl.mode", "disabled"),
    ];
    props.extend_from_slice(extra);
    let events = drain_until(
        "hand",
        source_on(server, db.name(), 5440 + run, &props),
        Arc::new(MemoryOffsetStore::new()),
        |e| row_ops(e).contains(&("c".to_owned(), 999_999)),
    )
    .await;
    writes.await.unwrap();
    let mut state: BTreeMap<i64, i64> = BTreeMap::new();
    let (mut read_twice, mut insert_present, mut change_missing) = (0u32, 0u32, 0u32);
    for e in &events {
        let int = |v: &Value| match v {
            Value::Int32(i) => i64::from(*i),
            other => panic!("{other:?}"),
        };
        match &e.kind {
            EventKind::Read { after, .. } => {
                read_twice += u32::from(state.insert(int(&after[0]), int(&after[1])).is_some());
            }
            EventKind::Insert { after, .. } => {
                insert_present += u32::from(state.insert(int(&after[0]), int(&after[1])).is_some());
            }
            EventKind::Update { after, .. } => {
                change_missing += u32::from(state.insert(int(&after[0]), int(&after[1])).is_none());
            }
            EventKind::Delete { before, .. } => {
                change_missing += u32::from(state.remove(&int(&before[0])).is_none());
            }
            _ => {}
        }
    }
    let rows: Vec<(i32, i32)> = conn.query("SELECT id, v FROM a").await.unwrap();
    let expected: BTreeMap<i64, i64> = rows
        .into_iter()
        .map(|(id, v)| (i64::from(id), i64::from(v)))
        .collect();
    assert_eq!(
        (read_twice, insert_present, change_missing),
        (0, 0, 0),
        "{prefix} run {run} {extra:?}"
    );
    assert!(
        state == expected,
        "{prefix} run {run} {extra:?}: the events do not rebuild the table"
    );
    let streamed = row_ops(&events).iter().filter(|(op, _)| op != "r").count();
    eprintln!(
        "handover {prefix} run {run}: {} read, {streamed} streamed",
        events.len() - streamed
    );
    // Writes overlapped the snapshot (extended holds them back until it is read).
    assert!(
        streamed > 1,
        "{prefix} run {run}: no write after the snapshot's view"
    );
}

/// `snapshot.locking.mode` on MariaDB, for a user without RELOAD (as managed servers
/// give): minimal and none snapshot without the lock; extended needs it and says so.
/// With RELOAD, extended holds the lock for the whole snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_locking_modes_without_reload() {
    // Its own server: extended holds a global read lock that every other test's writes
    // would wait on (and a lock-free snapshot taken meanwhile on the same server did
    // not rebuild its table: to be investigated, see the issue 21 note).
    let server = dedicated_mariadb();
    let mut root = server.connect(None).await;
    let user = outflow_testkit::unique_name("noreload");
    root.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{CDC_PASSWORD}';
         GRANT SELECT, SHOW DATABASES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'%';"
    ))
    .await
    .unwrap();
    let as_user = [("database.user", user.as_str())];
    for (run, mode) in [(20u32, "minimal"), (21, "none")] {
        let mut extra = as_user.to_vec();
        extra.extend([
            ("snapshot.locking.mode", mode),
            ("snapshot.max.threads", "2"),
        ]);
        handover_under_writes(server, run, "lockmode", &extra).await;
    }
    // extended without RELOAD: a definite error that names the privilege.
    let db = server.create_database("lockext").await;
    db.connect()
        .await
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let task = tokio::spawn(
        Pipeline::new(
            "ext",
            source_on(
                server,
                db.name(),
                5470,
                &[
                    ("database.user", user.as_str()),
                    ("snapshot.locking.mode", "extended"),
                ],
            ),
            MemorySink::new(MemorySinkMode::Immediate),
            Arc::new(MemoryOffsetStore::new()),
            PipelineConfig::default(),
        )
        .run(CancellationToken::new()),
    );
    let err = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the connector did not stop")
        .unwrap()
        .unwrap_err();
    assert_eq!(
        outflow_core::Classify::class(&err),
        outflow_core::ErrorClass::Definite,
        "{err}"
    );
    assert!(
        err.to_string().contains("FLUSH TABLES WITH READ LOCK")
            || format!("{err:?}").contains("RELOAD"),
        "{err}"
    );
    // extended with RELOAD (the cdc user).
    handover_under_writes(
        server,
        22,
        "lockext",
        &[("snapshot.locking.mode", "extended")],
    )
    .await;
    // Refused values name the property.
    let mut props: BTreeMap<String, String> = BTreeMap::from([
        (
            "connector.class".to_owned(),
            "io.debezium.connector.mariadb.MariaDbConnector".to_owned(),
        ),
        ("database.hostname".to_owned(), "h".to_owned()),
        ("database.user".to_owned(), "u".to_owned()),
        ("database.server.id".to_owned(), "7".to_owned()),
        ("topic.prefix".to_owned(), "p".to_owned()),
    ]);
    for (value, fine) in [
        ("minimal", true),
        ("extended", true),
        ("none", true),
        ("minimal_percona", false),
        ("custom", false),
        ("bogus", false),
    ] {
        props.insert("snapshot.locking.mode".to_owned(), value.to_owned());
        let result = MySqlConfig::from_properties(&props);
        assert_eq!(result.is_ok(), fine, "{value}");
        if let Err(e) = result {
            assert!(e.to_string().contains("snapshot.locking.mode"), "{e}");
        }
    }
}

/// `bigint.unsigned.handling.mode`: `precise` gives every BIGINT UNSIGNED exactly as a
/// decimal, from the snapshot and from the binlog; `long` (the default) wraps above
/// 2^63 − 1 as Debezium does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigint_unsigned_handling_modes() {
    let db = mariadb().create_database("mybig").await;
    let mut conn = db.connect().await;
    conn.query_drop(
        "CREATE TABLE u (id INT PRIMARY KEY, big BIGINT UNSIGNED);
         INSERT INTO u VALUES (1, 18446744073709551615);",
    )
    .await
    .unwrap();
    let values = |events: &[ChangeEvent]| -> Vec<Value> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Read { after, .. } | EventKind::Insert { after, .. } => {
                    Some(after[1].clone())
                }
                _ => None,
            })
            .collect()
    };
    let precise = drain_until(
        "bigp",
        source(
            db.name(),
            5451,
            &[("bigint.unsigned.handling.mode", "precise")],
        ),
        Arc::new(MemoryOffsetStore::new()),
        |e| !row_ops(e).is_empty(),
    )
    .await;
    let offsets = Arc::new(MemoryOffsetStore::new());
    for e in &precise {
        offsets.commit("bigp", &e.position).await.unwrap();
    }
    conn.query_drop("INSERT INTO u VALUES (2, 9223372036854775808), (3, 7)")
        .await
        .unwrap();
    let streamed = drain_until(
        "bigp",
        source(
            db.name(),
            5451,
            &[("bigint.unsigned.handling.mode", "precise")],
        ),
        offsets,
        |e| row_ops(e).len() >= 2,
    )
    .await;
    let decimal = |text: &str| Value::Decimal(outflow_core::Decimal::parse(text).unwrap());
    assert_eq!(values(&precise), [decimal("18446744073709551615")]);
    assert_eq!(
        values(&streamed),
        [decimal("9223372036854775808"), decimal("7")]
    );
    let long = drain_until(
        "bigl",
        source(db.name(), 5452, &[]),
        Arc::new(MemoryOffsetStore::new()),
        |e| row_ops(e).len() >= 3,
    )
    .await;
    assert_eq!(
        values(&long),
        [Value::Int64(-1), Value::Int64(i64::MIN), Value::Int64(7)]
    );
}

/// Preflight: each unsuitable server setting or missing privilege stops the connector
/// with a definite error that names it and says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_errors_name_the_setting() {
    let server = dedicated_mariadb();
    let db = server.create_database("mypre").await;
    let mut admin = server.connect(None).await;
    admin
        .query_drop(
            "CREATE USER 'noslave'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO 'noslave'@'%';",
        )
        .await
        .unwrap();
    let run = |extra: Vec<(&'static str, String)>, server_id: u32| {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let source = source_on(server, db.name(), server_id, &extra);
        async move {
            Pipeline::new(
                "pre",
                source,
                MemorySink::new(MemorySinkMode::Immediate),
                Arc::new(MemoryOffsetStore::new()),
                PipelineConfig::default(),
            )
            .run(CancellationToken::new())
            .await
            .expect_err("preflight must fail")
            .to_string()
        }
    };
    for (set, reset, names) in [
        (
            "SET GLOBAL binlog_format = 'STATEMENT'",
            "SET GLOBAL binlog_format = 'ROW'",
            "binlog_format=ROW",
        ),
        (
            "SET GLOBAL binlog_row_image = 'MINIMAL'",
            "SET GLOBAL binlog_row_image = 'FULL'",
            "binlog_row_image=FULL",
        ),
        (
            "SET GLOBAL binlog_row_metadata = 'MINIMAL'",
            "SET GLOBAL binlog_row_metadata = 'FULL'",
            "binlog_row_metadata=FULL",
        ),
    ] {
        admin.query_drop(set).await.unwrap();
        let error = run(Vec::new(), 5461).await;
        admin.query_drop(reset).await.unwrap();
        assert!(error.contains(names) && error.contains("To fix"), "{error}");
    }
    let error = run(Vec::new(), outflow_testkit::SERVER_ID).await;
    assert!(error.contains("database.server.id"), "{error}");
    let error = run(
        vec![
            ("database.user", "noslave".to_owned()),
            ("database.password", "pw".to_owned()),
        ],
        5462,
    )
    .await;
    assert!(error.contains("REPLICATION SLAVE"), "{error}");
    let error = run(vec![("database.password", "wrong".to_owned())], 5463).await;
    assert!(
        error.contains("grant") || error.contains("Access denied"),
        "{error}"
    );
}

/// Without a snapshot the start position is durable before the first change: a
/// connector stopped before any change resumes where it started, and every change
/// written while it was stopped arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_before_the_first_change_loses_nothing_without_a_snapshot() {
    let db = mariadb().create_database("nodata").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    for (n, mode) in ["no_data", "never"].into_iter().enumerate() {
        let offsets = Arc::new(MemoryOffsetStore::new());
        let run = |sink: MemorySink, shutdown: CancellationToken| {
            tokio::spawn(
                Pipeline::new(
                    "nodata",
                    source(db.name(), 5601, &[("snapshot.mode", mode)]),
                    sink,
                    offsets.clone(),
                    PipelineConfig::default(),
                )
                .run(shutdown),
            )
        };
        let shutdown = CancellationToken::new();
        let task = run(MemorySink::new(MemorySinkMode::Immediate), shutdown.clone());
        let stored = wait_for(Duration::from_secs(30), || {
            let offsets = offsets.clone();
            async move { offsets.load("nodata").await.unwrap().is_some() }
        })
        .await;
        assert!(stored, "{mode}: the start position was stored");
        shutdown.cancel();
        task.await.unwrap().unwrap();

        let base = 1000 * (n as i64 + 1);
        let values: Vec<String> = (0..100).map(|i| format!("({})", base + i)).collect();
        conn.query_drop(format!("INSERT INTO t VALUES {}", values.join(", ")))
            .await
            .unwrap();
        let sink = MemorySink::new(MemorySinkMode::Immediate);
        let shutdown = CancellationToken::new();
        let task = run(sink.clone(), shutdown.clone());
        let all = wait_for(Duration::from_secs(30), || {
            let sink = sink.clone();
            async move { row_ops(&sink.durable()).len() >= 100 }
        })
        .await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
        let ops = row_ops(&sink.durable());
        assert!(
            all,
            "{mode}: {} of 100 changes made while stopped arrived",
            ops.len()
        );
        let expected: Vec<(String, i64)> = (0..100).map(|i| ("c".to_owned(), base + i)).collect();
        assert_eq!(ops, expected, "{mode}");
    }
}

/// Kills the server's binlog dump connections (a dedicated server: no other test's),
/// once there is one (a source reconnecting takes a moment); returns how many.
async fn kill_binlog_dumps(conn: &mut mysql_async::Conn) -> usize {
    let mut ids: Vec<u64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ids.is_empty() && tokio::time::Instant::now() < deadline {
        ids = conn
            .query(
                "SELECT id FROM information_schema.processlist \
                 WHERE command LIKE 'Binlog Dump%' AND id <> CONNECTION_ID()",
            )
            .await
            .unwrap();
        if ids.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for id in &ids {
        let _ = conn.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    ids.len()
}

/// The binlog connection cut twice while changes stream, once inside a large
/// transaction: the source reopens it itself (the pipeline never stops), from the
/// transaction of the last event it sent, and every row arrives once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_binlog_connection_is_reopened_without_loss_or_repeat() {
    let server = dedicated_mariadb();
    let db = server.create_database("myrecon").await;
    let mut conn = db.connect().await;
    let mut admin = db.connect().await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    let metrics = Arc::new(outflow_mysql::source::MySqlMetrics::default());
    let sink = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        Pipeline::new(
            "recon",
            source_on(server, db.name(), 5491, &[("snapshot.mode", "no_data")])
                .with_metrics(Arc::clone(&metrics)),
            sink.clone(),
            Arc::new(MemoryOffsetStore::new()),
            PipelineConfig::default(),
        )
        .run(shutdown.clone()),
    );
    let streaming = wait_for(Duration::from_secs(60), || {
        let m = Arc::clone(&metrics);
        async move { m.streaming.load(std::sync::atomic::Ordering::Relaxed) }
    })
    .await;
    assert!(streaming, "the source never started streaming");
    let inserted = |from: i64, to: i64| {
        let rows: Vec<String> = (from..to).map(|i| format!("({i}, 'v{i}')")).collect();
        format!("INSERT INTO t VALUES {}", rows.join(","))
    };
    for i in 0..200 {
        conn.query_drop(inserted(i, i + 1)).await.unwrap();
    }
    assert_eq!(
        kill_binlog_dumps(&mut admin).await,
        1,
        "binlog dumps to cut"
    );
    for i in 200..400 {
        conn.query_drop(inserted(i, i + 1)).await.unwrap();
    }
    // One transaction of 20,000 rows, in 20 statements; the cut lands while the
    // source reads it (or just after).
    let mut big = String::from("START TRANSACTION;");
    for chunk in 0..20 {
        let from = 400 + chunk * 1000;
        big.push_str(&inserted(from, from + 1000));
        big.push(';');
    }
    big.push_str("COMMIT;");
    conn.query_drop(big).await.unwrap();
    let second = kill_binlog_dumps(&mut admin).await;
    assert_eq!(second, 1, "binlog dumps to cut after the large transaction");
    for i in 20_400..20_500 {
        conn.query_drop(inserted(i, i + 1)).await.unwrap();
    }
    let all = wait_for(Duration::from_secs(180), || {
        let n = row_ops(&sink.durable()).len();
        async move { n >= 20_500 }
    })
    .await;
    let events = sink.durable();
    let ids: Vec<i64> = row_ops(&events).into_iter().map(|(_, id)| id).collect();
    let expected: Vec<i64> = (0..20_500).collect();
    let first_difference = ids.iter().zip(&expected).position(|(a, b)| a != b);
    assert!(
        all && ids == expected,
        "{} rows of 20500, first difference at {first_difference:?}",
        ids.len()
    );
    let reconnects = metrics
        .reconnects
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(reconnects >= 2, "{reconnects} reconnects");
    assert!(!task.is_finished(), "the pipeline stopped");
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
