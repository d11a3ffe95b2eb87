//! The Postgres source end to end at the ChangeEvent level: snapshot, streaming, exact
//! event sequences, and resume after a stop without loss or repetition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outflow_core::{
    ChangeEvent, EventKind, MemoryOffsetStore, MemorySink, MemorySinkMode, OffsetStore, Pipeline,
    PipelineConfig, SnapshotMark, Value,
};
use outflow_postgres::config::PostgresConfig;
use outflow_postgres::source::PostgresSource;
use outflow_testkit::{PostgresDatabase, postgres, wait_for};
use tokio_util::sync::CancellationToken;

pub(crate) fn config(db: &PostgresDatabase, extra: &[(&str, &str)]) -> PostgresConfig {
    let port = db.server().port().to_string();
    let mut props: BTreeMap<String, String> = [
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", "postgres"),
        ("database.dbname", db.name()),
        ("slot.name", db.name()),
        ("status.update.interval.ms", "200"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    for (k, v) in extra {
        props.insert((*k).into(), (*v).into());
    }
    PostgresConfig::from_properties(&props).unwrap()
}

pub(crate) struct Running {
    pub(crate) sink: MemorySink,
    pub(crate) shutdown: CancellationToken,
    pub(crate) pipeline: Arc<outflow_core::PipelineMetrics>,
    pub(crate) source: Arc<outflow_postgres::source::PostgresMetrics>,
    pub(crate) task:
        tokio::task::JoinHandle<Result<outflow_core::PipelineReport, outflow_core::PipelineError>>,
}

pub(crate) fn start(config: PostgresConfig, offsets: Arc<MemoryOffsetStore>) -> Running {
    let sink = MemorySink::new(MemorySinkMode::Immediate);
    let shutdown = CancellationToken::new();
    let source = PostgresSource::new(config);
    let source_metrics = source.metrics();
    let pipeline = Pipeline::new(
        "pg-test",
        source,
        sink.clone(),
        offsets,
        PipelineConfig {
            checkpoint_interval: Duration::from_millis(100),
            ..PipelineConfig::default()
        },
    );
    let metrics = pipeline.metrics();
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    Running {
        sink,
        shutdown,
        pipeline: metrics,
        source: source_metrics,
        task,
    }
}

/// Waits for a connector task that must fail, and checks the error's class.
pub(crate) async fn fails_with(
    task: tokio::task::JoinHandle<
        Result<outflow_core::PipelineReport, outflow_core::PipelineError>,
    >,
    class: outflow_core::ErrorClass,
) -> outflow_core::PipelineError {
    let err = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the connector did not stop")
        .unwrap()
        .unwrap_err();
    assert_eq!(outflow_core::Classify::class(&err), class, "{err}");
    err
}

pub(crate) async fn wait_events(
    sink: &MemorySink,
    predicate: impl Fn(&[ChangeEvent]) -> bool,
) -> Vec<ChangeEvent> {
    let ok = wait_for(Duration::from_secs(30), || {
        let events = sink.durable();
        let ok = predicate(&events);
        async move { ok }
    })
    .await;
    let events = sink.durable();
    assert!(
        ok,
        "condition not reached; {} events, the last ones: {:?}",
        events.len(),
        events
            .iter()
            .rev()
            .take(8)
            .map(|e| kind_name(e))
            .collect::<Vec<_>>()
    );
    events
}

/// Waits until the stopped connector's walsender has exited (its slot is free again).
pub(crate) async fn walsender_gone(admin: &tokio_postgres::Client, db: &PostgresDatabase) {
    let application = format!("outflow {}", db.name());
    let gone = wait_for(Duration::from_secs(30), || {
        let application = application.clone();
        async move {
            admin
                .query_opt(
                    "SELECT 1 FROM pg_stat_replication WHERE application_name = $1",
                    &[&application],
                )
                .await
                .unwrap()
                .is_none()
        }
    })
    .await;
    assert!(gone, "the walsender of {application} did not exit");
}

/// Runs `undo` (the test's own writes to take back; may be empty), then drops the
/// test's slot (named after its database), so the next capture of the test starts
/// afresh: with a new store, a connector refuses a slot it has no record of making.
pub(crate) async fn reset_capture(
    admin: &tokio_postgres::Client,
    db: &PostgresDatabase,
    undo: &str,
) {
    let statement = format!("{undo}SELECT pg_drop_replication_slot('{}')", db.name());
    admin
        .batch_execute(&statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Waits until the connector's slot exists and is consistent: changes committed from
/// then on are delivered. (A slot is `active` while it is still being created, waiting for
/// the transactions running on the whole server to end; its `confirmed_flush_lsn` is set
/// once it is consistent. Changes committed before that are not in the stream.)
pub(crate) async fn slot_active(admin: &tokio_postgres::Client, db: &PostgresDatabase) {
    let slot = db.name().to_owned();
    let active = wait_for(Duration::from_secs(30), || {
        let slot = slot.clone();
        async move {
            admin
                .query_opt(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active \
                     AND confirmed_flush_lsn IS NOT NULL",
                    &[&slot],
                )
                .await
                .unwrap()
                .is_some()
        }
    })
    .await;
    assert!(active, "slot {slot} never became active");
}

/// A new database with `ddl` applied and a connector streaming from it without a
/// snapshot (`snapshot.mode=no_data`), its slot consistent: what is committed from now
/// on is delivered.
pub(crate) async fn streaming(
    prefix: &str,
    ddl: &str,
) -> (PostgresDatabase, tokio_postgres::Client, Running) {
    let db = postgres().create_database(prefix).await;
    let admin = db.connect().await;
    admin.batch_execute(ddl).await.unwrap();
    let run = start(
        config(&db, &[("snapshot.mode", "no_data")]),
        Arc::new(MemoryOffsetStore::new()),
    );
    slot_active(&admin, &db).await;
    (db, admin, run)
}

pub(crate) fn kind_name(e: &ChangeEvent) -> &'static str {
    match &e.kind {
        EventKind::Begin(_) => "begin",
        EventKind::Commit(_) => "commit",
        EventKind::Insert { .. } => "insert",
        EventKind::Update { .. } => "update",
        EventKind::Delete { .. } => "delete",
        EventKind::Truncate { .. } => "truncate",
        EventKind::Read { .. } => "read",
        EventKind::SchemaChange(_) => "schema",
        EventKind::Heartbeat => "heartbeat",
    }
}

#[tokio::test]
async fn snapshot_then_stream_exact_events_and_resume() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("src").await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2)); INSERT INTO items VALUES (1, 'a', 1.50), (2, 'b', NULL), (3, 'c', 3)")
        .await
        .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    let run = start(config(&db, &[]), offsets.clone());

    // Snapshot: three reads marked first/true/last, then the completion marker.
    let events = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    let marks: Vec<SnapshotMark> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Read { mark, .. } => Some(*mark),
            _ => None,
        })
        .collect();
    assert_eq!(
        marks,
        [SnapshotMark::First, SnapshotMark::True, SnapshotMark::Last]
    );
    let EventKind::Read { after, table, .. } = &events[0].kind else {
        panic!()
    };
    assert_eq!(table.id.to_string(), "public.items");
    assert_eq!(table.primary_key, vec![0]);
    assert!(!table.columns[1].nullable && table.columns[2].nullable);
    assert_eq!(after[0], Value::Int32(1));
    assert_eq!(after[2], Value::Decimal(outflow_core::Decimal::new(150, 2)));

    // Streaming: one transaction, exact sequence.
    admin
        .batch_execute("BEGIN; INSERT INTO items VALUES (4, 'd', 4); UPDATE items SET name = 'aa' WHERE id = 1; DELETE FROM items WHERE id = 2; COMMIT")
        .await
        .unwrap();
    let events = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Commit(_)))
    })
    .await;
    let streamed: Vec<&ChangeEvent> = events
        .iter()
        .skip_while(|e| !matches!(e.kind, EventKind::Begin(_)))
        .collect();
    assert_eq!(
        streamed.iter().map(|e| kind_name(e)).collect::<Vec<_>>(),
        ["begin", "insert", "update", "delete", "commit"]
    );
    let EventKind::Update { before, after, .. } = &streamed[2].kind else {
        panic!()
    };
    assert!(
        before.is_none(),
        "REPLICA IDENTITY DEFAULT, key unchanged: no before image"
    );
    assert_eq!(after[1], Value::String("aa".into()));
    let EventKind::Delete { before, .. } = &streamed[3].kind else {
        panic!()
    };
    assert_eq!(before[0], Value::Int32(2));
    assert_eq!(before[1], Value::Null, "key-only old tuple");
    let EventKind::Commit(boundary) = &streamed[4].kind else {
        panic!()
    };
    assert_eq!(boundary.event_count, 4, "begin + 3 rows before commit");
    assert!(streamed.windows(2).all(|w| w[0].position < w[1].position));
    assert!(
        streamed[1]
            .source_ts_us
            .is_some_and(|ts| ts > 1_600_000_000_000_000)
    );

    // The slot follows what is durable.
    let slot = db.name().to_owned();
    let confirmed = wait_for(Duration::from_secs(30), || {
        let (admin, slot) = (&admin, slot.clone());
        async move {
            let lsn: Option<String> = admin
                .query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
                .await
                .unwrap()
                .get(0);
            lsn.is_some_and(|l| l.parse::<outflow_postgres::position::Lsn>().is_ok_and(|l| l.0 > 0))
        }
    })
    .await;
    assert!(confirmed);

    // Stop, write while stopped, restart: exactly the new transaction arrives.
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
    let stored = offsets.load("pg-test").await.unwrap().unwrap();
    admin
        .batch_execute("INSERT INTO items VALUES (5, 'e', 5)")
        .await
        .unwrap();
    let run = start(config(&db, &[]), offsets.clone());
    let events = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Commit(_)))
    })
    .await;
    assert_eq!(
        events.iter().map(kind_name).collect::<Vec<_>>(),
        ["begin", "insert", "commit"],
        "no snapshot again, nothing repeated"
    );
    assert!(events[0].position > stored);
    let EventKind::Insert { after, .. } = &events[1].kind else {
        panic!()
    };
    assert_eq!(after[0], Value::Int32(5));
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
}

#[tokio::test]
async fn a_lost_slot_with_offsets_is_a_definite_error() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("lost").await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    let run = start(config(&db, &[("snapshot.mode", "never")]), offsets.clone());
    // Changes count from the slot's consistent point: wait for it.
    slot_active(&admin, &db).await;
    admin
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Commit(_)))
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    // The walsender of the stopped connector may take a moment to release the slot.
    let slot = db.name().to_owned();
    let dropped = wait_for(Duration::from_secs(30), || {
        let (admin, slot) = (&admin, slot.clone());
        async move {
            admin
                .batch_execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
                .await
                .is_ok()
        }
    })
    .await;
    assert!(dropped, "slot never released");

    let run = start(config(&db, &[]), offsets);
    let err = run.task.await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("is gone") && text.contains("when_needed"),
        "{text}"
    );
    assert_eq!(
        outflow_core::Classify::class(&err),
        outflow_core::ErrorClass::Definite
    );
}

/// Writes go on while the snapshot runs: every row is delivered exactly once, either
/// as a snapshot read or as a streamed insert, in ten runs.
#[tokio::test]
async fn snapshot_handover_under_concurrent_writes_loses_and_repeats_nothing() {
    let _lab = crate::LAB.shared().await;
    // Runs in which the handover fell inside the concurrent writes (some of the writer's
    // rows read by the snapshot, some streamed): the case this test is about.
    let mut split_runs = 0;
    for run_index in 0..10 {
        let db = postgres().create_database("handover").await;
        let admin = db.connect().await;
        admin
            .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT i, 0 FROM generate_series(1, 2000) i; ANALYZE t")
            .await
            .unwrap();
        let offsets = Arc::new(MemoryOffsetStore::new());
        let writer_db = db.connect().await;
        let writer = tokio::spawn(async move {
            for i in 2001..=2300 {
                writer_db
                    .batch_execute(&format!("INSERT INTO t VALUES ({i}, 1)"))
                    .await
                    .unwrap();
            }
        });
        // Every other run reads in parallel: key ranges on four connections.
        let parallel = [("snapshot.max.threads", "4"), ("snapshot.fetch.size", "50")];
        let extra: &[(&str, &str)] = if run_index % 2 == 1 { &parallel } else { &[] };
        let run = start(config(&db, extra), offsets);
        writer.await.unwrap();
        admin
            .batch_execute("INSERT INTO t VALUES (999999, 2)")
            .await
            .unwrap();
        // Read by the snapshot if the slot became consistent after it (slot creation waits
        // for transactions running anywhere on the server), streamed otherwise.
        let events = wait_events(&run.sink, |e| {
            e.iter().any(|e| matches!(&e.kind, EventKind::Insert { after, .. } | EventKind::Read { after, .. } if after[0] == Value::Int32(999_999)))
                && e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
        })
        .await;
        run.shutdown.cancel();
        run.task.await.unwrap().unwrap();
        walsender_gone(&admin, &db).await;

        let writer_row =
            |after: &Vec<Value>| matches!(after[0], Value::Int32(i) if (2001..=2300).contains(&i));
        let read = events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Read { after, .. } if writer_row(after)))
            .count();
        let streamed = events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Insert { after, .. } if writer_row(after)))
            .count();
        if read > 0 && streamed > 0 {
            split_runs += 1;
        }
        let mut seen = std::collections::BTreeMap::new();
        for e in &events {
            let id = match &e.kind {
                EventKind::Read { after, .. } | EventKind::Insert { after, .. } => after[0].clone(),
                _ => continue,
            };
            *seen.entry(format!("{id:?}")).or_insert(0) += 1;
        }
        let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicated.is_empty(),
            "run {run_index}: duplicated {duplicated:?}"
        );
        assert_eq!(seen.len(), 2301, "run {run_index}: rows missing");
        assert!(
            events.windows(2).all(|w| w[0].position < w[1].position),
            "run {run_index}: order"
        );
    }
    assert!(
        split_runs > 0,
        "the handover never fell inside the concurrent writes"
    );
}
