//! outflow drops or streams from only a replication slot it created: another consumer's
//! slot (here a live `pg_recvlogical` on `debezium`, Debezium's default name) is a
//! definite error that names who holds it, and is left as it was.

use std::sync::Arc;
use std::time::Duration;

use outflow_core::{EventKind, MemoryOffsetStore};
use outflow_testkit::{postgres, wait_for};

use crate::source_live::{config, fails_with, start, wait_events, walsender_gone};

async fn slot_state(admin: &tokio_postgres::Client, slot: &str) -> Option<bool> {
    admin
        .query_opt(
            "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

#[tokio::test]
async fn another_consumers_slot_is_never_dropped_or_read() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("foreign_slot").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
             CREATE PUBLICATION foreign_pub FOR TABLE t;",
        )
        .await
        .unwrap();
    let server = db.server();
    let mut recvlogical = std::process::Command::new(server.client_tool("pg_recvlogical"))
        .env("PGSSLMODE", "disable")
        .args([
            "--host=127.0.0.1".to_owned(),
            format!("--port={}", server.port()),
            "--username=postgres".to_owned(),
            format!("--dbname={}", db.name()),
            "--slot=debezium".to_owned(),
            "--plugin=pgoutput".to_owned(),
            "--create-slot".to_owned(),
            "--start".to_owned(),
            "--no-loop".to_owned(),
            "--option=proto_version=1".to_owned(),
            "--option=publication_names=foreign_pub".to_owned(),
            "--file=/dev/null".to_owned(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let active = wait_for(Duration::from_secs(30), || async {
        slot_state(&admin, "debezium").await == Some(true)
    })
    .await;
    assert!(active, "pg_recvlogical holds the slot");

    // Debezium's default slot name, held by a live reader: a definite error that says
    // who holds it and what to do; the reader goes on.
    let offsets = Arc::new(MemoryOffsetStore::new());
    let run = start(config(&db, &[("slot.name", "debezium")]), offsets.clone());
    let err = fails_with(run.task, outflow_core::ErrorClass::Definite).await;
    let text = err.to_string();
    for part in [
        "replication slot debezium already exists and was not created by this connector",
        "in use by PID",
        "pg_recvlogical",
        "slot.name",
        "pg_drop_replication_slot('debezium')",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert!(
        recvlogical.try_wait().unwrap().is_none(),
        "pg_recvlogical still runs"
    );
    assert_eq!(slot_state(&admin, "debezium").await, Some(true));

    // Idle but someone else's: neither dropped (snapshot modes) nor read (no_data).
    recvlogical.kill().unwrap();
    recvlogical.wait().unwrap();
    // Its walsender notices the closed socket only when it next uses it: end it, and
    // again on each poll, since a loaded server may not have let it go at the first.
    let idle = wait_for(Duration::from_secs(60), || async {
        admin
            .batch_execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE slot_name = 'debezium' AND active_pid IS NOT NULL",
            )
            .await
            .unwrap();
        slot_state(&admin, "debezium").await == Some(false)
    })
    .await;
    assert!(idle, "the slot is released");
    let before: String = admin
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'debezium'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for mode in ["initial", "no_data"] {
        let run = start(
            config(&db, &[("slot.name", "debezium"), ("snapshot.mode", mode)]),
            offsets.clone(),
        );
        let text = fails_with(run.task, outflow_core::ErrorClass::Definite)
            .await
            .to_string();
        assert!(
            text.contains("not created by this connector") && text.contains("not in use right now"),
            "{mode}: {text}"
        );
    }
    let after: String = admin
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'debezium'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, after, "the foreign slot was not advanced");
    // Taken over on purpose (a slot made by hand for this connector): it streams.
    let run = start(
        config(
            &db,
            &[
                ("slot.name", "debezium"),
                ("snapshot.mode", "no_data"),
                ("slot.adopt.existing", "true"),
            ],
        ),
        offsets.clone(),
    );
    admin
        .batch_execute("INSERT INTO t VALUES (10)")
        .await
        .unwrap();
    let sink = run.sink.clone();
    let streamed = wait_for(Duration::from_secs(30), || {
        let done = sink
            .durable()
            .iter()
            .any(|e| matches!(e.kind, EventKind::Insert { .. }));
        async move { done }
    })
    .await;
    run.shutdown.cancel();
    let ended = run.task.await.unwrap();
    assert!(streamed, "the adopted slot streamed nothing: {ended:?}");
    ended.unwrap();
    let released = wait_for(Duration::from_secs(30), || async {
        slot_state(&admin, "debezium").await == Some(false)
    })
    .await;
    assert!(released, "the adopted slot is released at stop");
    // Its offsets belong to that slot; the next part starts afresh.
    offsets.reset("pg-test");
    admin
        .batch_execute("DELETE FROM t WHERE id = 10")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_drop_replication_slot('debezium')")
        .await
        .unwrap();

    // The connector's own slot, after an offset reset: dropped and made anew, with a
    // new snapshot.
    let run = start(config(&db, &[]), offsets.clone());
    wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
    offsets.reset("pg-test");
    admin
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    let run = start(config(&db, &[]), offsets.clone());
    let events = wait_events(&run.sink, |e| {
        e.iter()
            .filter(|e| matches!(e.kind, EventKind::Read { .. }))
            .count()
            >= 2
    })
    .await;
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Read { .. }))
            .count(),
        2
    );
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
}
