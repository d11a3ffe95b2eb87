//! Snapshot modes, schema changes while streaming, and a type outflow does not map.

use std::sync::Arc;
use std::time::Duration;

use outflow_core::{EventKind, MemoryOffsetStore, Value};
use outflow_testkit::postgres;

use crate::source_live::{
    config, kind_name, reset_capture, slot_active, start, streaming, wait_events, walsender_gone,
};

#[tokio::test]
async fn schema_changes_while_streaming_make_new_versions() {
    let _lab = crate::LAB.shared().await;
    let (db, admin, run) = streaming("ddl", "CREATE TABLE t (id int PRIMARY KEY, a int)").await;
    for statement in [
        "INSERT INTO t VALUES (1, 1)",
        "ALTER TABLE t ADD COLUMN b text",
        "INSERT INTO t VALUES (2, 2, 'two')",
        "ALTER TABLE t RENAME COLUMN a TO a2",
        "INSERT INTO t VALUES (3, 3, 'three')",
        "ALTER TABLE t ALTER COLUMN a2 TYPE bigint",
        "INSERT INTO t VALUES (4, 4, 'four')",
        "ALTER TABLE t DROP COLUMN b",
        "INSERT INTO t VALUES (5, 5)",
    ] {
        admin.batch_execute(statement).await.unwrap();
    }
    let events = wait_events(&run.sink, |e| {
        e.iter().any(
            |e| matches!(&e.kind, EventKind::Insert { after, .. } if after[0] == Value::Int32(5)),
        )
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;

    let shapes: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Insert { table, after } => {
                let columns: Vec<String> = table
                    .columns
                    .iter()
                    .map(|c| format!("{}:{:?}", c.name, c.data_type))
                    .collect();
                Some(format!(
                    "insert v{} [{}] {:?}",
                    table.version.0,
                    columns.join(" "),
                    after
                ))
            }
            EventKind::SchemaChange(change) => Some(format!("schema v{}", change.table.version.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        shapes,
        [
            "insert v1 [id:Int32 a:Int32] [Int32(1), Int32(1)]",
            "schema v2",
            "insert v2 [id:Int32 a:Int32 b:String { length: None }] [Int32(2), Int32(2), String(\"two\")]",
            "schema v3",
            "insert v3 [id:Int32 a2:Int32 b:String { length: None }] [Int32(3), Int32(3), String(\"three\")]",
            "schema v4",
            "insert v4 [id:Int32 a2:Int64 b:String { length: None }] [Int32(4), Int64(4), String(\"four\")]",
            "schema v5",
            "insert v5 [id:Int32 a2:Int64] [Int32(5), Int64(5)]",
        ]
    );
}

#[tokio::test]
async fn snapshot_modes() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("modes").await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();

    // initial_only: the snapshot, then the connector ends by itself.
    let run = start(
        config(&db, &[("snapshot.mode", "initial_only")]),
        Arc::new(MemoryOffsetStore::new()),
    );
    tokio::time::timeout(Duration::from_secs(30), run.task)
        .await
        .expect("initial_only must end after the snapshot")
        .unwrap()
        .unwrap();
    let kinds: Vec<&str> = run.sink.durable().iter().map(kind_name).collect();
    assert_eq!(kinds, ["read", "read", "heartbeat"]);
    walsender_gone(&admin, &db).await;

    // no_data: no reads; changes stream.
    reset_capture(&admin, &db, "").await;
    let offsets = Arc::new(MemoryOffsetStore::new());
    let run = start(
        config(&db, &[("snapshot.mode", "no_data")]),
        offsets.clone(),
    );
    slot_active(&admin, &db).await;
    admin
        .batch_execute("INSERT INTO t VALUES (3)")
        .await
        .unwrap();
    let events = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Commit(_)))
    })
    .await;
    assert_eq!(
        events.iter().map(kind_name).collect::<Vec<_>>(),
        ["begin", "insert", "commit"]
    );
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;

    // when_needed: the slot is lost while offsets exist; a new snapshot instead of an error.
    reset_capture(&admin, &db, "").await;
    let run = start(config(&db, &[("snapshot.mode", "when_needed")]), offsets);
    let events = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    let read: Vec<&Value> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Read { after, .. } => Some(&after[0]),
            _ => None,
        })
        .collect();
    assert_eq!(read, [&Value::Int32(1), &Value::Int32(2), &Value::Int32(3)]);
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
}

#[tokio::test]
async fn an_unmapped_type_arrives_as_its_text() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("unmapped").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, l pg_lsn, q tsquery);
             INSERT INTO t VALUES (1, '16/B374D848', 'fat & rat')",
        )
        .await
        .unwrap();
    let run = start(config(&db, &[]), Arc::new(MemoryOffsetStore::new()));
    wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    admin
        .batch_execute("INSERT INTO t VALUES (2, '0/1', 'cat')")
        .await
        .unwrap();
    let streamed = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Insert { .. }))
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
    let rows: Vec<Vec<Value>> = streamed
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Read { after, .. } | EventKind::Insert { after, .. } => Some(after.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                Value::Int32(1),
                Value::String("16/B374D848".into()),
                Value::String("'fat' & 'rat'".into())
            ],
            vec![
                Value::Int32(2),
                Value::String("0/1".into()),
                Value::String("'cat'".into())
            ],
        ]
    );
}

/// `schema.include.list` / `schema.exclude.list` (a Debezium tutorial's way to capture
/// one schema): the other schemas' tables are neither snapshotted nor streamed.
#[tokio::test]
async fn schema_lists_choose_the_captured_schemas() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("schemas").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE SCHEMA inventory; CREATE SCHEMA private;
             CREATE TABLE inventory.items (id int PRIMARY KEY);
             CREATE TABLE private.secrets (id int PRIMARY KEY);
             INSERT INTO inventory.items VALUES (1); INSERT INTO private.secrets VALUES (1);",
        )
        .await
        .unwrap();
    for (property, value) in [
        ("schema.include.list", "inventory"),
        ("schema.exclude.list", "private,public"),
    ] {
        let run = start(
            config(&db, &[(property, value)]),
            Arc::new(MemoryOffsetStore::new()),
        );
        wait_events(&run.sink, |e| {
            e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
        })
        .await;
        admin
            .batch_execute(
                "INSERT INTO private.secrets VALUES (2); INSERT INTO inventory.items VALUES (2);",
            )
            .await
            .unwrap();
        let events = wait_events(&run.sink, |e| {
            e.iter().any(|e| matches!(e.kind, EventKind::Commit(_)))
        })
        .await;
        let tables: std::collections::BTreeSet<String> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Read { table, .. } | EventKind::Insert { table, .. } => {
                    Some(table.id.to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            tables.into_iter().collect::<Vec<_>>(),
            ["inventory.items"],
            "{property}={value}"
        );
        run.shutdown.cancel();
        run.task.await.unwrap().unwrap();
        crate::source_live::walsender_gone(&admin, &db).await;
        reset_capture(
            &admin,
            &db,
            "DELETE FROM inventory.items WHERE id = 2; DELETE FROM private.secrets WHERE id = 2;",
        )
        .await;
    }
}

/// `no_data`: a connector stopped before its first change resumes where it started
/// (its slot, which it made, holds the position): every change written while it was
/// stopped arrives.
#[tokio::test]
async fn a_stop_before_the_first_change_loses_nothing_without_a_snapshot() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("nodata_stop").await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    let run = start(
        config(&db, &[("snapshot.mode", "no_data")]),
        offsets.clone(),
    );
    slot_active(&admin, &db).await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
    admin
        .batch_execute("INSERT INTO t SELECT i FROM generate_series(1, 100) i")
        .await
        .unwrap();
    let run = start(config(&db, &[("snapshot.mode", "no_data")]), offsets);
    let events = wait_events(&run.sink, |e| {
        e.iter()
            .filter(|e| matches!(e.kind, EventKind::Insert { .. }))
            .count()
            >= 100
    })
    .await;
    let ids: Vec<Value> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Insert { after, .. } => Some(after[0].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, (1..=100).map(Value::Int32).collect::<Vec<_>>());
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
}

/// `hstore.handling.mode`: `json` (default) gives a JSON object's text, `map` a map of
/// text to optional text, in the snapshot and in the stream, for `hstore` and `hstore[]`.
#[tokio::test]
async fn hstore_arrives_as_json_or_as_a_map() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("hstore_modes").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            r#"CREATE EXTENSION IF NOT EXISTS hstore;
             CREATE TABLE t (id int PRIMARY KEY, h hstore, hs hstore[]);
             INSERT INTO t VALUES (1, 'a=>1, "b c"=>NULL', ARRAY['k=>v'::hstore])"#,
        )
        .await
        .unwrap();
    let entries = |pairs: &[(&str, Option<&str>)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    for (mode, data_type) in [
        ("json", outflow_core::DataType::Json),
        ("map", outflow_core::DataType::StringMap),
    ] {
        let run = start(
            config(&db, &[("hstore.handling.mode", mode)]),
            Arc::new(MemoryOffsetStore::new()),
        );
        wait_events(&run.sink, |e| {
            e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
        })
        .await;
        admin
            .batch_execute(r#"INSERT INTO t VALUES (2, '"x"=>"\"q\""', NULL)"#)
            .await
            .unwrap();
        let events = wait_events(&run.sink, |e| {
            e.iter().any(|e| matches!(e.kind, EventKind::Insert { .. }))
        })
        .await;
        run.shutdown.cancel();
        run.task.await.unwrap().unwrap();
        walsender_gone(&admin, &db).await;
        let rows: Vec<(Vec<outflow_core::DataType>, Vec<Value>)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Read { table, after, .. } | EventKind::Insert { table, after } => {
                    Some((
                        table.columns.iter().map(|c| c.data_type.clone()).collect(),
                        after.clone(),
                    ))
                }
                _ => None,
            })
            .collect();
        assert_eq!(rows.len(), 2, "{mode}: {} rows", rows.len());
        let expected_types = vec![
            outflow_core::DataType::Int32,
            data_type.clone(),
            outflow_core::DataType::Array(Box::new(data_type.clone())),
        ];
        assert_eq!(rows[0].0, expected_types, "{mode}");
        assert_eq!(rows[1].0, expected_types, "{mode}");
        let expected: [Vec<Value>; 2] = match mode {
            "json" => [
                vec![
                    Value::Int32(1),
                    Value::Json(r#"{"a":"1","b c":null}"#.into()),
                    Value::Array(vec![Value::Json(r#"{"k":"v"}"#.into())]),
                ],
                vec![
                    Value::Int32(2),
                    Value::Json(r#"{"x":"\"q\""}"#.into()),
                    Value::Null,
                ],
            ],
            _ => [
                vec![
                    Value::Int32(1),
                    Value::StringMap(entries(&[("a", Some("1")), ("b c", None)])),
                    Value::Array(vec![Value::StringMap(entries(&[("k", Some("v"))]))]),
                ],
                vec![
                    Value::Int32(2),
                    Value::StringMap(entries(&[("x", Some("\"q\""))])),
                    Value::Null,
                ],
            ],
        };
        assert_eq!(rows[0].1, expected[0], "{mode}: snapshot");
        assert_eq!(rows[1].1, expected[1], "{mode}: stream");
        reset_capture(&admin, &db, "DELETE FROM t WHERE id = 2;").await;
    }
}

/// The snapshot reads the columns the stream carries, so a table has one shape: a stored
/// generated column is in both on PostgreSQL 18 when the publication publishes it
/// (`publish_generated_columns = stored`) and in neither before; a publication's
/// column list (15+) limits both.
#[tokio::test]
async fn the_snapshot_reads_the_columns_the_publication_streams() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("published_columns").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, a int, doubled int GENERATED ALWAYS AS (a * 2) STORED);
             CREATE TABLE u (id int PRIMARY KEY, a int, secret text);
             INSERT INTO t (id, a) VALUES (1, 10); INSERT INTO u VALUES (1, 10, 'x');",
        )
        .await
        .unwrap();
    let major = postgres().major_version();
    let publication = match major {
        18.. => Some(
            "CREATE PUBLICATION cols FOR TABLE t, u (id, a) WITH (publish_generated_columns = stored)",
        ),
        15..=17 => Some("CREATE PUBLICATION cols FOR TABLE t, u (id, a)"),
        _ => None,
    };
    let mut extra = vec![];
    if let Some(statement) = publication {
        admin.batch_execute(statement).await.unwrap();
        extra = vec![
            ("publication.name", "cols"),
            ("publication.autocreate.mode", "disabled"),
        ];
    }
    let run = start(config(&db, &extra), Arc::new(MemoryOffsetStore::new()));
    wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    admin
        .batch_execute("INSERT INTO t (id, a) VALUES (2, 21); INSERT INTO u VALUES (2, 21, 'y')")
        .await
        .unwrap();
    let events = wait_events(&run.sink, |e| {
        e.iter()
            .filter(|e| matches!(e.kind, EventKind::Insert { .. }))
            .count()
            >= 2
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
    let mut seen: Vec<(&str, String, Vec<String>, Vec<Value>)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Read { table, after, .. } | EventKind::Insert { table, after } => Some((
                kind_name(e),
                table.id.table.clone(),
                table.columns.iter().map(|c| c.name.clone()).collect(),
                after.clone(),
            )),
            _ => None,
        })
        .collect();
    seen.sort_by(|x, y| (&x.1, x.0).cmp(&(&y.1, y.0)));
    let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let t_columns = if major >= 18 {
        names(&["id", "a", "doubled"])
    } else {
        names(&["id", "a"])
    };
    let u_columns = if major >= 15 {
        names(&["id", "a"])
    } else {
        names(&["id", "a", "secret"])
    };
    let shapes: Vec<(&str, &str, &Vec<String>)> = seen
        .iter()
        .map(|(k, t, c, _)| (*k, t.as_str(), c))
        .collect();
    assert_eq!(
        shapes,
        [
            ("insert", "t", &t_columns),
            ("read", "t", &t_columns),
            ("insert", "u", &u_columns),
            ("read", "u", &u_columns),
        ],
        "PostgreSQL {major}"
    );
    if major >= 18 {
        assert_eq!(seen[0].3[2], Value::Int32(42), "streamed generated value");
        assert_eq!(
            seen[1].3[2],
            Value::Int32(20),
            "snapshotted generated value"
        );
    }
}
