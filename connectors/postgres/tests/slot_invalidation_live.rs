//! A slot invalidated by `max_slot_wal_keep_size` (`wal_status = lost`) is recognised
//! before streaming and while streaming: a definite error that says changes were lost
//! and from where, or, with `snapshot.mode=when_needed`, a new slot and snapshot.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use outflow_core::{EventKind, MemoryOffsetStore, Value};
use outflow_testkit::{dedicated_postgres, wait_for};

use crate::source_live::{config, fails_with, start, wait_events, walsender_gone};

/// Writes WAL and checkpoints until the slot named `slot` is invalidated.
async fn invalidate(admin: &tokio_postgres::Client, slot: &str) {
    let lost = wait_for(Duration::from_secs(90), || async {
        admin
            .batch_execute(
                "INSERT INTO filler SELECT g, repeat('x', 500) FROM generate_series(1, 4000) g;
                 TRUNCATE filler;",
            )
            .await
            .unwrap();
        admin.batch_execute("SELECT pg_switch_wal()").await.unwrap();
        admin.batch_execute("CHECKPOINT").await.unwrap();
        let status: Option<String> = admin
            .query_one(
                "SELECT wal_status::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()
            .get(0);
        status.as_deref() == Some("lost")
    })
    .await;
    assert!(lost, "slot {slot} was not invalidated");
}

fn reads(events: &[outflow_core::ChangeEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Read { after, .. } => Some(after[0].clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_invalidated_slot_is_detected_before_and_while_streaming() {
    let _lab = crate::LAB.shared().await;
    let server = dedicated_postgres();
    let setup = server.connect("postgres").await;
    setup
        .batch_execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        .await
        .unwrap();
    setup
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    let db = server.create_database("invalidated").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
             CREATE TABLE filler (id int PRIMARY KEY, v text);",
        )
        .await
        .unwrap();
    let extra = [
        ("table.include.list", "public\\.t"),
        ("publication.autocreate.mode", "filtered"),
    ];

    // Before streaming: the connector was stopped, its slot invalidated meanwhile.
    let offsets = Arc::new(MemoryOffsetStore::new());
    let run = start(config(&db, &extra), offsets.clone());
    wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    assert_eq!(
        run.source.slot_wal_status.load(Ordering::Relaxed),
        1,
        "reserved"
    );
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
    invalidate(&admin, db.name()).await;
    let run = start(config(&db, &extra), offsets.clone());
    let err = fails_with(run.task, outflow_core::ErrorClass::Definite).await;
    let text = err.to_string();
    assert!(
        text.contains("was invalidated")
            && text.contains("are lost")
            && text.contains("when_needed"),
        "{text}"
    );
    assert_eq!(
        run.source.slot_wal_status.load(Ordering::Relaxed),
        4,
        "lost"
    );

    // when_needed: a new slot and a new snapshot.
    admin
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    let mut when_needed = extra.to_vec();
    when_needed.push(("snapshot.mode", "when_needed"));
    let run = start(config(&db, &when_needed), offsets.clone());
    let events = wait_events(&run.sink, |e| reads(e).len() >= 2).await;
    assert_eq!(reads(&events), [Value::Int32(1), Value::Int32(2)]);
    assert_eq!(run.source.slot_wal_status.load(Ordering::Relaxed), 1);

    // While streaming: a change that never becomes durable holds the slot back while
    // WAL is written; the invalidation ends the stream with the same error.
    run.sink.hold(true);
    admin
        .batch_execute("INSERT INTO t VALUES (3)")
        .await
        .unwrap();
    let seen = wait_for(Duration::from_secs(30), || {
        let accepted = run.sink.accepted();
        async move {
            accepted
                .iter()
                .any(|e| matches!(&e.kind, EventKind::Insert { after, .. } if after[0] == Value::Int32(3)))
        }
    })
    .await;
    assert!(seen, "the insert reached the sink");
    let run_source = Arc::clone(&run.source);
    let task = run.task;
    invalidate(&admin, db.name()).await;
    // when_needed: transient, so that the restart takes the new snapshot.
    let err = fails_with(task, outflow_core::ErrorClass::Transient).await;
    assert!(
        err.to_string().contains("new snapshot") || format!("{err:?}").contains("invalidated"),
        "{err}"
    );
    assert_eq!(run_source.slot_wal_status.load(Ordering::Relaxed), 4);
    setup
        .batch_execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
        .await
        .unwrap();
    setup
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
}
