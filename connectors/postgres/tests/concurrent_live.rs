//! Several connectors streaming from one server at once (different databases).

use std::sync::Arc;

use outflow_core::{EventKind, MemoryOffsetStore, Value};
use outflow_testkit::postgres;

use crate::source_live::{config, slot_active, start, wait_events, walsender_gone};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_of_several_databases_stream_at_the_same_time() {
    let _lab = crate::LAB.shared().await;
    for round in 0..10 {
        let mut dbs = Vec::new();
        for i in 0..3 {
            let db = postgres().create_database(&format!("conc{i}")).await;
            let admin = db.connect().await;
            admin
                .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT -i FROM generate_series(1, 500) i")
                .await
                .unwrap();
            dbs.push((db, admin));
        }
        let runs: Vec<_> = dbs
            .iter()
            .map(|(db, _)| {
                start(
                    config(db, &[("snapshot.mode", "never")]),
                    Arc::new(MemoryOffsetStore::new()),
                )
            })
            .collect();
        for (db, admin) in &dbs {
            slot_active(admin, db).await;
        }
        for (i, (_, admin)) in dbs.iter().enumerate() {
            admin
                .batch_execute(&format!("INSERT INTO t VALUES ({i})"))
                .await
                .unwrap();
        }
        for (i, run) in runs.iter().enumerate() {
            let expected = Value::Int32(i32::try_from(i).unwrap());
            wait_events(&run.sink, |e| {
                e.iter().any(
                    |e| matches!(&e.kind, EventKind::Insert { after, .. } if after[0] == expected),
                )
            })
            .await;
        }
        for run in runs {
            run.shutdown.cancel();
            run.task.await.unwrap().unwrap();
        }
        for (db, admin) in &dbs {
            walsender_gone(admin, db).await;
        }
        println!("round {round} ok");
    }
}
