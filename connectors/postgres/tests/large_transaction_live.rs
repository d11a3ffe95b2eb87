//! Transactions larger than `logical_decoding_work_mem`: Postgres streams them in
//! progress (protocol v2), outflow spools them to disk and emits them at commit, exactly,
//! with bounded memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outflow_core::{
    EventKind, MemoryOffsetStore, NullSink, Pipeline, PipelineConfig, PipelineMetrics, Value,
};
use outflow_postgres::source::PostgresSource;
use outflow_testkit::{PostgresDatabase, postgres, wait_for};
use tokio_util::sync::CancellationToken;

use crate::source_live::{config, slot_active, streaming, wait_events, walsender_gone};

/// Transactions the server streamed in progress on this slot.
async fn streamed_transactions(admin: &tokio_postgres::Client, db: &PostgresDatabase) -> i64 {
    admin
        .query_opt(
            "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1",
            &[&db.name()],
        )
        .await
        .unwrap()
        .map_or(0, |r| r.get(0))
}

#[tokio::test]
async fn streamed_transactions_commit_exactly_and_aborts_leave_nothing() {
    let _lab = crate::LAB.shared().await;
    let (db, admin, run) =
        streaming("streamed", "CREATE TABLE t (id int PRIMARY KEY, v text)").await;
    admin
        .batch_execute("INSERT INTO t VALUES (0, 'start')")
        .await
        .unwrap();
    wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Commit(_)))
    })
    .await;
    // A whole transaction rolled back after streaming, then one with a rolled-back
    // savepoint in the middle; each is far above the server's 64 MB decoding memory.
    admin
        .batch_execute(
            "BEGIN;
             INSERT INTO t SELECT i, repeat('x', 40) FROM generate_series(1000001, 1500000) i;
             ROLLBACK;",
        )
        .await
        .unwrap();
    admin
        .batch_execute(
            "BEGIN;
             INSERT INTO t SELECT i, repeat('a', 40) FROM generate_series(1, 300000) i;
             SAVEPOINT s;
             INSERT INTO t SELECT i, repeat('b', 40) FROM generate_series(300001, 600000) i;
             ROLLBACK TO SAVEPOINT s;
             INSERT INTO t SELECT i, repeat('c', 40) FROM generate_series(700001, 700010) i;
             UPDATE t SET v = 'updated' WHERE id = 1;
             COMMIT;",
        )
        .await
        .unwrap();
    admin
        .batch_execute("INSERT INTO t VALUES (-1, 'end')")
        .await
        .unwrap();
    let events = wait_events(&run.sink, |e| {
        e.iter().any(
            |e| matches!(&e.kind, EventKind::Insert { after, .. } if after[0] == Value::Int32(-1)),
        )
    })
    .await;
    // The server's decoding statistics reach the metrics at a status update.
    let reported = wait_for(Duration::from_secs(30), || async {
        run.source.slot_stream_bytes.load(Ordering::Relaxed) > 0
            && run.source.slot_decoded_bytes.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(
        reported,
        "pg_stat_replication_slots not in the metrics: stream {} decoded {}",
        run.source.slot_stream_bytes.load(Ordering::Relaxed),
        run.source.slot_decoded_bytes.load(Ordering::Relaxed)
    );
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;

    // The committed large transaction must have been streamed. The rolled-back one may
    // not be: a server that finds it already aborted when it reaches the memory limit
    // (its decoding lagging behind the ROLLBACK, as on a loaded machine) discards it
    // without streaming. Either way it must leave nothing, which the checks below show.
    let streamed = wait_for(Duration::from_secs(60), || async {
        streamed_transactions(&admin, &db).await >= 1
    })
    .await;
    assert!(
        streamed,
        "the server did not stream the large transaction: stream_txns = {}",
        streamed_transactions(&admin, &db).await
    );

    // Three transactions: the first insert, the large one, the last insert.
    let commits: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Commit(b) => Some(b.event_count),
            _ => None,
        })
        .collect();
    assert_eq!(commits, [2, 300_012, 2]);
    let mut ids = Vec::new();
    let mut updated = None;
    for e in &events {
        match &e.kind {
            EventKind::Insert { after, .. } => {
                if let Value::Int32(id) = after[0] {
                    ids.push(id);
                }
            }
            EventKind::Update { after, .. } => updated = Some(after.clone()),
            _ => {}
        }
    }
    let expected: Vec<i32> = std::iter::once(0)
        .chain(1..=300_000)
        .chain(700_001..=700_010)
        .chain(std::iter::once(-1))
        .collect();
    assert_eq!(ids.len(), expected.len());
    assert!(ids == expected, "inserts differ from the committed rows");
    assert_eq!(
        updated.unwrap(),
        vec![Value::Int32(1), Value::String("updated".into())]
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
}

/// Peak resident memory of this process is sampled while a 5-million-row transaction
/// goes through the connector into a sink that keeps nothing.
#[tokio::test]
async fn five_million_row_transaction_streams_with_bounded_memory() {
    let _lab = crate::LAB.exclusive().await;
    let db = postgres().create_database("huge").await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let baseline = resident_bytes();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(resident_bytes());
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };

    let pipeline = Pipeline::new(
        "pg-huge",
        PostgresSource::new(config(&db, &[("snapshot.mode", "no_data")])),
        NullSink::default(),
        Arc::new(MemoryOffsetStore::new()),
        PipelineConfig::default(),
    );
    let metrics: Arc<PipelineMetrics> = pipeline.metrics();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    slot_active(&admin, &db).await;
    admin
        .batch_execute("INSERT INTO big VALUES (0, 'start')")
        .await
        .unwrap();
    let durable = |n: u64| {
        let metrics = metrics.clone();
        move || {
            let done = metrics.events_durable.load(Ordering::Relaxed) >= n;
            async move { done }
        }
    };
    assert!(wait_for(Duration::from_secs(30), durable(3)).await);
    let started = std::time::Instant::now();
    admin
        .batch_execute("INSERT INTO big SELECT i, 'row ' || i FROM generate_series(1, 5000000) i")
        .await
        .unwrap();
    let committed = started.elapsed();
    // begin + 5,000,000 inserts + commit.
    assert!(
        wait_for(Duration::from_secs(600), durable(3 + 5_000_002)).await,
        "only {} events durable",
        metrics.events_durable.load(Ordering::Relaxed)
    );
    let delivered = started.elapsed();
    shutdown.cancel();
    task.await.unwrap().unwrap();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    walsender_gone(&admin, &db).await;
    let streamed = streamed_transactions(&admin, &db).await;
    let growth_mib = peak.saturating_sub(baseline) / (1 << 20);
    println!(
        "5,000,000-row transaction: committed in {committed:?}, all events durable after \
         {delivered:?}; streamed transactions {streamed}; peak RSS {} MiB (baseline {} MiB, \
         growth {growth_mib} MiB)",
        peak / (1 << 20),
        baseline / (1 << 20)
    );
    assert!(
        growth_mib < 256,
        "memory grew by {growth_mib} MiB for one transaction"
    );
}

/// VmRSS of this process, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
