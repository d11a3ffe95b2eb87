//! The snapshot in parallel (key ranges on several connections), its order and marks,
//! its progress, and a stop in the middle of it that resumes without loss or repeat.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use outflow_core::{ChangeEvent, EventKind, MemoryOffsetStore, OffsetStore, SnapshotMark, Value};
use outflow_postgres::position::PgPosition;
use outflow_testkit::{PostgresDatabase, postgres};

use crate::source_live::{config, start, wait_events, walsender_gone};

const TABLES: &str = "
    CREATE TABLE a_int (id int PRIMARY KEY, v text);
    INSERT INTO a_int SELECT i, 'a' || i FROM generate_series(1, 20000) i;
    CREATE TABLE b_text (code text PRIMARY KEY, n int);
    INSERT INTO b_text SELECT 'k' || lpad(i::text, 6, '0'), i FROM generate_series(1, 6000) i;
    CREATE TABLE c_composite (x int, y text, v int, PRIMARY KEY (x, y));
    INSERT INTO c_composite SELECT i % 50, 'y' || i, i FROM generate_series(1, 6000) i;
    CREATE TABLE d_keyless (v int);
    ALTER TABLE d_keyless REPLICA IDENTITY FULL;
    INSERT INTO d_keyless SELECT i FROM generate_series(1, 300) i;
    CREATE TABLE e_int (id bigint PRIMARY KEY, v text);
    INSERT INTO e_int SELECT i, 'e' || i FROM generate_series(1, 8000) i;
    ANALYZE;";

fn row_key(table: &str, row: &[Value]) -> String {
    match table {
        "c_composite" => format!("{:?}/{:?}", row[0], row[1]),
        "d_keyless" => format!("{:?}#", row[0]),
        _ => format!("{:?}", row[0]),
    }
}

/// Applies events to per-table maps key → row (reads and inserts upsert).
fn apply(state: &mut BTreeMap<String, BTreeMap<String, Vec<Value>>>, events: &[ChangeEvent]) {
    for e in events {
        match &e.kind {
            EventKind::Read { table, after, .. } | EventKind::Insert { table, after } => {
                state
                    .entry(table.id.table.clone())
                    .or_default()
                    .insert(row_key(&table.id.table, after), after.clone());
            }
            EventKind::Update {
                table,
                before,
                after,
            } => {
                let rows = state.entry(table.id.table.clone()).or_default();
                if let Some(before) = before {
                    rows.remove(&row_key(&table.id.table, before));
                }
                rows.insert(row_key(&table.id.table, after), after.clone());
            }
            EventKind::Delete { table, before } => {
                state
                    .entry(table.id.table.clone())
                    .or_default()
                    .remove(&row_key(&table.id.table, before));
            }
            _ => {}
        }
    }
}

/// The database's rows, as `apply` keys them.
async fn database_state(
    admin: &tokio_postgres::Client,
) -> BTreeMap<String, BTreeMap<String, Vec<Value>>> {
    let mut state = BTreeMap::new();
    let text = |s: String| Value::String(s);
    let mut put = |table: &str, row: Vec<Value>| {
        state
            .entry(table.to_owned())
            .or_insert_with(BTreeMap::new)
            .insert(row_key(table, &row), row);
    };
    for r in admin.query("SELECT id, v FROM a_int", &[]).await.unwrap() {
        put("a_int", vec![Value::Int32(r.get(0)), text(r.get(1))]);
    }
    for r in admin
        .query("SELECT code, n FROM b_text", &[])
        .await
        .unwrap()
    {
        put("b_text", vec![text(r.get(0)), Value::Int32(r.get(1))]);
    }
    for r in admin
        .query("SELECT x, y, v FROM c_composite", &[])
        .await
        .unwrap()
    {
        put(
            "c_composite",
            vec![
                Value::Int32(r.get(0)),
                text(r.get(1)),
                Value::Int32(r.get(2)),
            ],
        );
    }
    for r in admin.query("SELECT v FROM d_keyless", &[]).await.unwrap() {
        put("d_keyless", vec![Value::Int32(r.get(0))]);
    }
    for r in admin.query("SELECT id, v FROM e_int", &[]).await.unwrap() {
        put("e_int", vec![Value::Int64(r.get(0)), text(r.get(1))]);
    }
    state
}

fn reads_per_key(events: &[ChangeEvent]) -> BTreeMap<String, usize> {
    let mut reads = BTreeMap::new();
    for e in events {
        if let EventKind::Read { table, after, .. } = &e.kind {
            *reads
                .entry(format!(
                    "{}:{}",
                    table.id.table,
                    row_key(&table.id.table, after)
                ))
                .or_insert(0) += 1;
        }
    }
    reads
}

const PARALLEL: [(&str, &str); 2] = [
    ("snapshot.max.threads", "4"),
    ("snapshot.fetch.size", "200"),
];

async fn setup(prefix: &str) -> (PostgresDatabase, tokio_postgres::Client) {
    let db = postgres().create_database(prefix).await;
    let admin = db.connect().await;
    admin.batch_execute(TABLES).await.unwrap();
    (db, admin)
}

#[tokio::test]
async fn parallel_snapshot_reads_every_row_once_in_table_and_key_order() {
    let _lab = crate::LAB.shared().await;
    let (db, admin) = setup("parallel").await;
    let run = start(config(&db, &PARALLEL), Arc::new(MemoryOffsetStore::new()));
    let events = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;

    let mut state = BTreeMap::new();
    apply(&mut state, &events);
    assert_eq!(state, database_state(&admin).await);
    let repeated: Vec<_> = reads_per_key(&events)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .take(5)
        .collect();
    assert!(repeated.is_empty(), "read twice: {repeated:?}");
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));

    // Tables one after the other, each in key order.
    let reads: Vec<(&str, &Vec<Value>, SnapshotMark)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Read { table, after, mark } => Some((table.id.table.as_str(), after, *mark)),
            _ => None,
        })
        .collect();
    let mut order: Vec<&str> = reads.iter().map(|r| r.0).collect();
    order.dedup();
    assert_eq!(
        order,
        ["a_int", "b_text", "c_composite", "d_keyless", "e_int"]
    );
    let ids: Vec<i32> = reads
        .iter()
        .filter(|r| r.0 == "a_int")
        .map(|r| match r.1[0] {
            Value::Int32(i) => i,
            _ => 0,
        })
        .collect();
    assert_eq!(ids, (1..=20_000).collect::<Vec<_>>());
    // Marks: first, first/last of each table, last.
    let marks: Vec<(&str, SnapshotMark)> = reads
        .iter()
        .filter(|r| r.2 != SnapshotMark::True)
        .map(|r| (r.0, r.2))
        .collect();
    assert_eq!(
        marks,
        [
            ("a_int", SnapshotMark::First),
            ("a_int", SnapshotMark::LastInDataCollection),
            ("b_text", SnapshotMark::FirstInDataCollection),
            ("b_text", SnapshotMark::LastInDataCollection),
            ("c_composite", SnapshotMark::FirstInDataCollection),
            ("c_composite", SnapshotMark::LastInDataCollection),
            ("d_keyless", SnapshotMark::FirstInDataCollection),
            ("d_keyless", SnapshotMark::LastInDataCollection),
            ("e_int", SnapshotMark::FirstInDataCollection),
            ("e_int", SnapshotMark::Last),
        ]
    );
    // Progress.
    assert_eq!(run.source.snapshot_tables.load(Ordering::Relaxed), 5);
    assert_eq!(run.source.snapshot_tables_done.load(Ordering::Relaxed), 5);
    assert_eq!(run.source.snapshot_rows.load(Ordering::Relaxed), 40_300);
    let estimate = run.source.snapshot_rows_estimate.load(Ordering::Relaxed);
    assert!((30_000..=50_000).contains(&estimate), "{estimate}");
}

/// Stops abruptly in the middle of the snapshot, changes rows on both sides of where it
/// stood and in tables it had not reached, and resumes: the delivered events, applied in
/// order, give exactly the database's rows, and no row is read twice.
#[tokio::test]
async fn a_stop_mid_snapshot_resumes_where_it_stood() {
    let _lab = crate::LAB.shared().await;
    // One connection, stopped early in the first table (integer key); four, stopped
    // later, in the second (text key).
    for (threads, commits) in [("1", 3), ("4", 24)] {
        let (db, admin) = setup("resume").await;
        let offsets = Arc::new(MemoryOffsetStore::new());
        let props = [
            ("snapshot.max.threads", threads),
            ("snapshot.fetch.size", "200"),
        ];
        let run = start(config(&db, &props), offsets.clone());
        let pipeline = run.pipeline.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while pipeline.offset_commits.load(Ordering::Relaxed) < commits
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        run.task.abort();
        let _ = run.task.await;
        let stored = offsets.load("pg-test").await.unwrap().unwrap();
        let Some(p) = PgPosition::of(&stored) else {
            panic!()
        };
        assert!(
            p.snapshot,
            "the stop must fall inside the snapshot: {stored:?}"
        );
        let cursor = p.snapshot_cursor.clone().unwrap();
        let first: Vec<ChangeEvent> = run
            .sink
            .durable()
            .into_iter()
            .filter(|e| e.position <= stored)
            .collect();
        walsender_gone(&admin, &db).await;

        // While stopped: changes before and after the cursor and in every table.
        admin
            .batch_execute(
                "UPDATE a_int SET v = 'changed' WHERE id IN (1, 10000, 19999);
                 DELETE FROM a_int WHERE id IN (2, 15000);
                 INSERT INTO a_int VALUES (30000, 'new');
                 UPDATE a_int SET id = 40000 WHERE id = 3;
                 UPDATE b_text SET n = -n WHERE code IN ('k000001', 'k005000');
                 INSERT INTO b_text VALUES ('k999999', 1);
                 DELETE FROM c_composite WHERE v < 10;
                 UPDATE d_keyless SET v = -1 WHERE v = 1;
                 DELETE FROM e_int WHERE id > 7990;
                 INSERT INTO e_int VALUES (9000, 'new');",
            )
            .await
            .unwrap();
        let run = start(config(&db, &props), offsets.clone());
        // Changes after the restart are streamed too.
        wait_events(&run.sink, |e| {
            e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
        })
        .await;
        admin
            .batch_execute("UPDATE a_int SET v = 'late' WHERE id = 4")
            .await
            .unwrap();
        admin
            .batch_execute("INSERT INTO e_int VALUES (9001, 'end')")
            .await
            .unwrap();
        let second = wait_events(&run.sink, |e| {
            e.iter().any(|e| matches!(&e.kind, EventKind::Insert { after, .. } if after[0] == Value::Int64(9001)))
        })
        .await;
        run.shutdown.cancel();
        run.task.await.unwrap().unwrap();
        walsender_gone(&admin, &db).await;

        assert!(second[0].position > stored);
        let all: Vec<ChangeEvent> = first.into_iter().chain(second).collect();
        assert!(
            all.windows(2).all(|w| w[0].position < w[1].position),
            "threads {threads}: positions must increase"
        );
        let mut state = BTreeMap::new();
        apply(&mut state, &all);
        let expected = database_state(&admin).await;
        for (table, rows) in &expected {
            let got = state.get(table).cloned().unwrap_or_default();
            let missing: Vec<_> = rows
                .keys()
                .filter(|k| !got.contains_key(*k))
                .take(5)
                .collect();
            let extra: Vec<_> = got
                .keys()
                .filter(|k| !rows.contains_key(*k))
                .take(5)
                .collect();
            let differ: Vec<_> = rows
                .iter()
                .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                .take(5)
                .collect();
            assert!(
                missing.is_empty() && extra.is_empty() && differ.is_empty(),
                "threads {threads}, cursor {cursor:?}, table {table}: missing {missing:?}, extra {extra:?}, differ {differ:?}"
            );
        }
        let repeated: Vec<_> = reads_per_key(&all)
            .into_iter()
            .filter(|(k, n)| *n > 1 && !k.starts_with("d_keyless"))
            .take(5)
            .collect();
        assert!(
            repeated.is_empty(),
            "threads {threads}, cursor {cursor:?}: read twice {repeated:?}"
        );
        // Rows inserted while stopped, after the cursor or in tables not reached: read by
        // the resumed snapshot, and their inserts (committed before it) not streamed. In
        // a table already finished (tables are emitted in name order, so before the
        // cursor's; how far the stop got depends on the machine's load): streamed.
        for (table, key) in [
            ("a_int", Value::Int32(30_000)),
            ("b_text", Value::String("k999999".into())),
            ("e_int", Value::Int64(9000)),
        ] {
            let finished = format!("public.{table}") < cursor.table;
            let expected = if finished { "insert" } else { "read" };
            let kinds: Vec<&str> = all
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::Read {
                        table: t, after, ..
                    } if t.id.table == table && after[0] == key => Some("read"),
                    EventKind::Insert { table: t, after }
                        if t.id.table == table && after[0] == key =>
                    {
                        Some("insert")
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(kinds, [expected], "threads {threads}: {table} {key:?}");
        }
        println!("threads {threads}: stopped at {cursor:?}");
    }
}

/// A batch may end on a table's last row: the cursor it carries names that row's table
/// (a cursor naming the next table with this one's key made a resume skip rows of it).
#[tokio::test]
async fn every_cursor_names_the_table_of_its_row() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("cursors").await;
    let admin = db.connect().await;
    // Cumulative ends at 1023, 1024 and 2048 rows: whether or not the snapshot's first
    // batch holds an event before the rows, some batch (1024 events) ends on a table's
    // last row.
    admin
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 1023);
             CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b VALUES (1);
             CREATE TABLE c (id int PRIMARY KEY); INSERT INTO c SELECT generate_series(1, 1024);
             CREATE TABLE d (id int PRIMARY KEY); INSERT INTO d SELECT generate_series(1, 10);",
        )
        .await
        .unwrap();
    let run = start(config(&db, &[]), Arc::new(MemoryOffsetStore::new()));
    let events = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
    let mut cursors = 0;
    for event in &events {
        let (Some(p), EventKind::Read { table, .. }) =
            (PgPosition::of(&event.position), &event.kind)
        else {
            continue;
        };
        if let Some(cursor) = &p.snapshot_cursor {
            cursors += 1;
            assert_eq!(
                cursor.table,
                format!("public.{}", table.id.table),
                "the cursor of seq {}",
                p.seq
            );
        }
    }
    assert!(cursors >= 2, "{cursors} cursors");
}

/// The snapshot reads values as text on its own connections: under a database whose
/// session defaults are unlike the replication session's (interval, date and time zone
/// styles), every value still reads as the stream would give it. Found by the Debezium
/// differential test: `IntervalStyle=postgres` failed the snapshot of any interval.
#[tokio::test]
async fn the_snapshot_reads_values_whatever_the_database_session_defaults() {
    use outflow_core::value::Interval;
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("styles").await;
    let admin = db.connect().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET IntervalStyle = 'postgres_verbose';
             ALTER DATABASE {name} SET DateStyle = 'SQL, DMY';
             ALTER DATABASE {name} SET TimeZone = 'America/New_York';
             ALTER DATABASE {name} SET extra_float_digits = 0;
             CREATE TABLE styled (id int PRIMARY KEY, span interval, day date,
                                  at_tz timestamptz, f float8);
             INSERT INTO styled VALUES (1, '1 year 2 days 03:00:00.5', '2024-02-29',
                                        '2023-11-15 00:13:20+02', 0.1);",
            name = db.name()
        ))
        .await
        .unwrap();
    let run = start(config(&db, &[]), Arc::new(MemoryOffsetStore::new()));
    let events = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Read { .. }))
    })
    .await;
    run.shutdown.cancel();
    let outcome = run.task.await.unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");
    walsender_gone(&admin, &db).await;
    let row = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Read { after, .. } => Some(after.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        row,
        vec![
            Value::Int32(1),
            Value::Interval(Interval {
                months: 12,
                days: 2,
                micros: 10_800_500_000,
            }),
            Value::Date(19_782),
            Value::TimestampTz(1_700_000_000_000_000),
            Value::Float64(0.1),
        ]
    );
}
