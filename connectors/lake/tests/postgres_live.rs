//! Postgres → pipeline → lake, against the testkit's Postgres: a snapshot, a large
//! transaction cut by an abrupt stop, a restart from the stored offset; every change in
//! exactly one visible file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use outflow_core::{MemoryOffsetStore, OffsetStore, Pipeline, PipelineConfig};
use outflow_interchange::RecordStage;
use outflow_interchange::transforms::TransformChain;
use outflow_lake::{LakeSink, LakeSinkConfig};
use outflow_postgres::config::PostgresConfig;
use outflow_postgres::source::PostgresSource;
use outflow_testkit::{PostgresDatabase, postgres, unique_name};
use tokio_util::sync::CancellationToken;

use crate::{field, formatter, props, read_avro, visible_files};

async fn pg_to_lake(
    db: &PostgresDatabase,
    connector: &str,
    root: &std::path::Path,
    offsets: Arc<MemoryOffsetStore>,
) -> Pipeline<PostgresSource, RecordStage<LakeSink>, Arc<MemoryOffsetStore>> {
    let port = db.server().port().to_string();
    let source = PostgresConfig::from_properties(&props(&[
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", "postgres"),
        ("database.dbname", db.name()),
        ("slot.name", db.name()),
        ("status.update.interval.ms", "200"),
    ]))
    .unwrap();
    let committed = offsets.load(connector).await.unwrap();
    let sink = RecordStage::new(
        formatter("shop"),
        TransformChain::default(),
        LakeSink::start(
            LakeSinkConfig::from_properties(
                connector,
                &props(&[
                    ("lake.path", root.to_str().unwrap()),
                    ("lake.flush.size", "5000"),
                ]),
            )
            .unwrap(),
            committed,
        )
        .await
        .unwrap(),
    );
    Pipeline::new(
        connector.to_owned(),
        PostgresSource::new(source),
        sink,
        offsets,
        PipelineConfig {
            checkpoint_interval: Duration::from_millis(200),
            ..PipelineConfig::default()
        },
    )
}

fn int(value: &Avro) -> i64 {
    match value {
        Avro::Int(v) => i64::from(*v),
        Avro::Long(v) => *v,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_lake_exactly_once_across_an_abrupt_stop() {
    let db = postgres().create_database("tolake").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT i, 'r' || i FROM generate_series(1, 2000) i",
        )
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let connector = unique_name("pg-lake");
    let offsets = Arc::new(MemoryOffsetStore::new());

    let pipeline = pg_to_lake(&db, &connector, root.path(), offsets.clone()).await;
    let metrics = pipeline.metrics();
    let task = tokio::spawn(pipeline.run(CancellationToken::new()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.events_durable.load(Ordering::Relaxed) < 2001 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "snapshot not durable"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    admin
        .batch_execute("INSERT INTO t SELECT i, 'big' FROM generate_series(10001, 60000) i")
        .await
        .unwrap();
    while metrics.events_durable.load(Ordering::Relaxed) < 2001 + 20_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "transaction not flowing"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    task.abort();
    let _ = task.await;

    admin
        .batch_execute(
            "INSERT INTO t VALUES (-1, 'last'); UPDATE t SET v = 'u' WHERE id = 1; DELETE FROM t WHERE id = 2",
        )
        .await
        .unwrap();
    let pipeline = pg_to_lake(&db, &connector, root.path(), offsets.clone()).await;
    let metrics = pipeline.metrics();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    // Received since the restart: the rest of the big transaction and the three changes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let files = visible_files(root.path());
        let done = read_avro(&files)
            .iter()
            .any(|r| field(r, "op") == &Avro::String("d".into()));
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delete never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(
        metrics.events_skipped.load(Ordering::Relaxed) > 0
            || metrics.events_received.load(Ordering::Relaxed) > 0
    );

    let files = visible_files(root.path());
    assert!(
        outflow_lake::layout::walk(root.path())
            .unwrap()
            .iter()
            .all(|p| !p.to_str().unwrap().ends_with(".tmp")),
        "no temporary file after a clean stop"
    );
    let records = read_avro(&files);
    let mut per_key: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for record in &records {
        let op = match field(record, "op") {
            Avro::String(op) => op.clone(),
            other => panic!("{other:?}"),
        };
        let row = if op == "d" {
            field(record, "before")
        } else {
            field(record, "after")
        };
        per_key.entry(int(field(row, "id"))).or_default().push(op);
    }
    assert_eq!(
        records.len(),
        2000 + 50_000 + 3,
        "every change exactly once"
    );
    assert_eq!(per_key[&1], ["r", "u"]);
    assert_eq!(per_key[&2], ["r", "d"]);
    assert_eq!(per_key[&-1], ["c"]);
    assert!((10_001..=60_000).all(|id| per_key[&id] == ["c"]));
}

/// Snapshot of `OUTFLOW_LAKE_ROWS` rows (default 20,000; set it in a release build for a
/// figure) read twice from the same table: into the null sink (the source's own rate)
/// and into the lake as Avro; prints both rates and their ratio. The lake must keep up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The figures are the test's report.
async fn snapshot_throughput_to_the_lake_against_the_null_sink() {
    let rows: usize = std::env::var("OUTFLOW_LAKE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db = postgres().create_database("lakerate").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            &"CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2), at timestamptz);
             INSERT INTO t SELECT i, 'n' || i, i / 100.0, now() FROM generate_series(1, $ROWS) i"
                .replace("$ROWS", &rows.to_string()),
        )
        .await
        .unwrap();
    let port = db.server().port().to_string();
    let source = |slot: &str| {
        PostgresSource::new(
            PostgresConfig::from_properties(&props(&[
                ("database.hostname", "127.0.0.1"),
                ("database.port", port.as_str()),
                ("database.user", "postgres"),
                ("database.dbname", db.name()),
                ("slot.name", slot),
                ("snapshot.mode", "initial_only"),
            ]))
            .unwrap(),
        )
    };
    let run_null = async {
        let started = std::time::Instant::now();
        Pipeline::new(
            "rate-null",
            source(&format!("{}_null", db.name())),
            outflow_core::NullSink::default(),
            Arc::new(MemoryOffsetStore::new()),
            PipelineConfig::default(),
        )
        .run(CancellationToken::new())
        .await
        .unwrap();
        started.elapsed()
    };
    let null_elapsed = run_null.await;

    let root = tempfile::tempdir().unwrap();
    let sink = RecordStage::new(
        formatter("shop"),
        TransformChain::default(),
        LakeSink::start(
            LakeSinkConfig::from_properties(
                "rate-lake",
                &props(&[("lake.path", root.path().to_str().unwrap())]),
            )
            .unwrap(),
            None,
        )
        .await
        .unwrap(),
    );
    let started = std::time::Instant::now();
    Pipeline::new(
        "rate-lake",
        source(&format!("{}_lake", db.name())),
        sink,
        Arc::new(MemoryOffsetStore::new()),
        PipelineConfig::default(),
    )
    .run(CancellationToken::new())
    .await
    .unwrap();
    let lake_elapsed = started.elapsed();
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "snapshot of {rows} rows: null sink {:.0} rows/s, lake (Avro, snappy) {:.0} rows/s, ratio {:.2}",
        rate(null_elapsed),
        rate(lake_elapsed),
        rate(lake_elapsed) / rate(null_elapsed)
    );
    let records = read_avro(&visible_files(root.path()));
    assert_eq!(records.len(), rows);
}

/// Streaming: `OUTFLOW_LAKE_CHANGES` inserts (default 20,000; 1,000 per transaction)
/// pre-generated into the WAL with two slots waiting, then drained once into the null
/// sink and once into the lake (Avro), after a warm-up drain. Prints both rates and their
/// ratio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // The figures are the test's report.
async fn stream_throughput_to_the_lake_against_the_null_sink() {
    let changes: u64 = std::env::var("OUTFLOW_LAKE_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db = postgres().create_database("lakestream").await;
    let admin = db.connect().await;
    let (warm_slot, null_slot, lake_slot) = (
        format!("{}_warm", db.name()),
        format!("{}_null", db.name()),
        format!("{}_lake", db.name()),
    );
    // One statement per call: a slot cannot be created in a transaction that wrote.
    for statement in [
        "CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL, price numeric(8,2), at timestamptz, ok bool)".to_owned(),
        "CREATE PUBLICATION outflow_rate FOR ALL TABLES".to_owned(),
        format!("SELECT pg_create_logical_replication_slot('{warm_slot}', 'pgoutput')"),
        format!("SELECT pg_create_logical_replication_slot('{null_slot}', 'pgoutput')"),
        format!("SELECT pg_create_logical_replication_slot('{lake_slot}', 'pgoutput')"),
    ] {
        admin.batch_execute(&statement).await.unwrap();
    }
    let mut last_txn_start = 0;
    for first in (0..changes).step_by(1000) {
        if first + 1000 >= changes {
            last_txn_start = crate::postgres_live::wal_lsn(&admin).await;
        }
        admin
            .batch_execute(&format!(
                "INSERT INTO t SELECT i, 'n' || i, i / 100.0, now(), i % 2 = 0 FROM generate_series({first}, {}) i",
                (first + 999).min(changes - 1)
            ))
            .await
            .unwrap();
    }
    let port = db.server().port().to_string();
    let source = |slot: &str| {
        PostgresSource::new(
            PostgresConfig::from_properties(&props(&[
                ("database.hostname", "127.0.0.1"),
                ("database.port", port.as_str()),
                ("database.user", "postgres"),
                ("database.dbname", db.name()),
                ("slot.name", slot),
                ("publication.name", "outflow_rate"),
                ("publication.autocreate.mode", "disabled"),
                ("snapshot.mode", "no_data"),
                // The slots were made above, before the changes: taken over.
                ("slot.adopt.existing", "true"),
            ]))
            .unwrap(),
        )
    };
    /// Runs `pipeline` until its stored offset passes `target`; returns the time taken.
    async fn drain<S: outflow_core::Sink>(
        pipeline: Pipeline<PostgresSource, S, Arc<MemoryOffsetStore>>,
        offsets: Arc<MemoryOffsetStore>,
        connector: &str,
        target: u64,
    ) -> Duration {
        let started = std::time::Instant::now();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(pipeline.run(shutdown.clone()));
        loop {
            if let Some(p) = offsets
                .load(connector)
                .await
                .unwrap()
                .as_ref()
                .and_then(outflow_postgres::position::PgPosition::of)
                && p.lsn_commit.0 > target
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "{connector} did not drain"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        shutdown.cancel();
        task.await.unwrap().unwrap();
        elapsed
    }
    let offsets = Arc::new(MemoryOffsetStore::new());
    // A first drain warms the caches (WAL pages, catalog), so the two measured runs
    // compare like with like.
    drain(
        Pipeline::new(
            "stream-warm",
            source(&warm_slot),
            outflow_core::NullSink::default(),
            offsets.clone(),
            PipelineConfig::default(),
        ),
        offsets.clone(),
        "stream-warm",
        last_txn_start,
    )
    .await;
    let null_elapsed = drain(
        Pipeline::new(
            "stream-null",
            source(&null_slot),
            outflow_core::NullSink::default(),
            offsets.clone(),
            PipelineConfig::default(),
        ),
        offsets.clone(),
        "stream-null",
        last_txn_start,
    )
    .await;
    let root = tempfile::tempdir().unwrap();
    let sink = RecordStage::new(
        formatter("shop"),
        TransformChain::default(),
        LakeSink::start(
            LakeSinkConfig::from_properties(
                "stream-lake",
                &props(&[("lake.path", root.path().to_str().unwrap())]),
            )
            .unwrap(),
            None,
        )
        .await
        .unwrap(),
    );
    let lake_elapsed = drain(
        Pipeline::new(
            "stream-lake",
            source(&lake_slot),
            sink,
            offsets.clone(),
            // Rolls every 200 ms, so the last roll adds little to the measured time.
            PipelineConfig {
                checkpoint_interval: Duration::from_millis(200),
                ..PipelineConfig::default()
            },
        ),
        offsets,
        "stream-lake",
        last_txn_start,
    )
    .await;
    let rate = |d: Duration| changes as f64 / d.as_secs_f64();
    println!(
        "stream of {changes} inserts: null sink {:.0} events/s, lake (Avro, snappy) {:.0} events/s, ratio {:.2}",
        rate(null_elapsed),
        rate(lake_elapsed),
        rate(lake_elapsed) / rate(null_elapsed)
    );
    let records = read_avro(&visible_files(root.path()));
    assert_eq!(records.len() as u64, changes);
}

pub(crate) async fn wal_lsn(admin: &tokio_postgres::Client) -> u64 {
    let text: String = admin
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}
