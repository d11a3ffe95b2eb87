//! Row images per REPLICA IDENTITY, unchanged TOAST values, TRUNCATE, preflight errors,
//! and the slot/publication/heartbeat properties, as exact `ChangeEvent` sequences.

use std::sync::Arc;
use std::time::Duration;

use outflow_core::{ChangeEvent, EventKind, MemoryOffsetStore, Value};
use outflow_testkit::{postgres, wait_for};

use crate::source_live::{config, kind_name, start, wait_events, walsender_gone};

/// A short, exact rendering of a row: long strings as their length, so a TOAST value
/// is recognisable without printing it.
fn row(values: &[Value]) -> String {
    let cells: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::Null => "null".to_owned(),
            Value::Unavailable => "unavailable".to_owned(),
            Value::Int32(i) => i.to_string(),
            Value::String(s) if s.len() > 20 => format!("<{} chars>", s.len()),
            Value::String(s) => format!("{s:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    format!("[{}]", cells.join(", "))
}

fn render(event: &ChangeEvent) -> String {
    match &event.kind {
        EventKind::Insert { table, after } => format!("insert {} {}", table.id.table, row(after)),
        EventKind::Update {
            table,
            before,
            after,
        } => format!(
            "update {} before={} after={}",
            table.id.table,
            before.as_deref().map_or("none".to_owned(), row),
            row(after)
        ),
        EventKind::Delete { table, before } => {
            format!("delete {} before={}", table.id.table, row(before))
        }
        EventKind::Truncate { tables } => {
            let names: Vec<&str> = tables.iter().map(|t| t.id.table.as_str()).collect();
            format!("truncate {}", names.join(","))
        }
        _ => kind_name(event).to_owned(),
    }
}

#[tokio::test]
async fn row_images_follow_the_replica_identity() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("images").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE dflt (id int PRIMARY KEY, a text, big text);
             CREATE TABLE full_t (id int PRIMARY KEY, a text, big text);
             ALTER TABLE full_t REPLICA IDENTITY FULL;
             CREATE TABLE idx (id int, code text NOT NULL, a text);
             CREATE UNIQUE INDEX idx_code ON idx (code);
             ALTER TABLE idx REPLICA IDENTITY USING INDEX idx_code;
             CREATE TABLE nokey (a int, b text);
             ALTER TABLE nokey REPLICA IDENTITY FULL;
             CREATE TABLE big_source AS
               SELECT string_agg(md5(i::text), '') AS v FROM generate_series(1, 300) i;
             INSERT INTO dflt SELECT 1, 'a', v FROM big_source;
             INSERT INTO full_t SELECT 1, 'a', v FROM big_source;
             INSERT INTO idx VALUES (1, 'c1', 'a');
             INSERT INTO nokey VALUES (1, 'a');",
        )
        .await
        .unwrap();
    let offsets = Arc::new(MemoryOffsetStore::new());
    let run = start(
        // big_source has no key: all_tables would publish it (and break its UPDATEs).
        config(
            &db,
            &[
                ("table.exclude.list", "public\\.big_source"),
                ("publication.autocreate.mode", "filtered"),
            ],
        ),
        offsets,
    );
    // The snapshot is done when its completion heartbeat arrives.
    let snapshot = wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    let reads = snapshot
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Read { .. }))
        .count();
    assert_eq!(reads, 4);
    let nokey_table = snapshot
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Read { table, .. } if table.id.table == "nokey" => Some(table.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        nokey_table.primary_key.is_empty(),
        "no primary key: a null message key"
    );

    admin
        .batch_execute(
            "UPDATE dflt SET a = 'b';
             UPDATE dflt SET id = 2;
             DELETE FROM dflt;
             UPDATE full_t SET a = 'b';
             DELETE FROM full_t;
             UPDATE idx SET a = 'b';
             UPDATE idx SET code = 'c2';
             DELETE FROM idx;
             UPDATE nokey SET b = 'b';
             DELETE FROM nokey;
             INSERT INTO dflt VALUES (5, 'x', 'y');
             TRUNCATE dflt, full_t;
             INSERT INTO idx VALUES (9, 'end', 'end');",
        )
        .await
        .unwrap();
    let events = wait_events(&run.sink, |e| {
        e.iter().any(
            |e| matches!(&e.kind, EventKind::Insert { after, .. } if after[0] == Value::Int32(9)),
        )
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;

    let rows: Vec<String> = events
        .iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::Read { .. }
                    | EventKind::Heartbeat
                    | EventKind::Begin(_)
                    | EventKind::Commit(_)
            )
        })
        .map(render)
        .collect();
    let expected = [
        // DEFAULT: no before image while the key stays; the key-only old tuple when it
        // changes; the unchanged TOAST column is unavailable.
        r#"update dflt before=none after=[1, "b", unavailable]"#,
        r#"update dflt before=[1, null, null] after=[2, "b", unavailable]"#,
        r#"delete dflt before=[2, null, null]"#,
        // FULL: the whole old row, and the TOAST value filled in from it.
        r#"update full_t before=[1, "a", <9600 chars>] after=[1, "b", <9600 chars>]"#,
        r#"delete full_t before=[1, "b", <9600 chars>]"#,
        // USING INDEX: like DEFAULT, with the index columns as the identity.
        r#"update idx before=none after=[1, "c1", "b"]"#,
        r#"update idx before=[null, "c1", null] after=[1, "c2", "b"]"#,
        r#"delete idx before=[null, "c2", null]"#,
        r#"update nokey before=[1, "a"] after=[1, "b"]"#,
        r#"delete nokey before=[1, "b"]"#,
        r#"insert dflt [5, "x", "y"]"#,
        "truncate dflt,full_t",
        r#"insert idx [9, "end", "end"]"#,
    ];
    assert_eq!(rows, expected);
    // One simple-query string is one transaction: one Begin, one Commit around it all.
    let boundaries: Vec<&str> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Begin(_) | EventKind::Commit(_)))
        .map(kind_name)
        .collect();
    assert_eq!(boundaries, ["begin", "commit"]);
}

#[tokio::test]
async fn preflight_errors_name_the_setting_and_the_fix() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("preflight").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE ok_t (id int PRIMARY KEY);
             CREATE TABLE keyless (a int, b text);
             CREATE ROLE no_replication LOGIN;
             CREATE ROLE no_connections LOGIN REPLICATION CONNECTION LIMIT 0;",
        )
        .await
        .unwrap();
    let run_to_error = |extra: Vec<(&'static str, String)>| {
        let db = &db;
        async move {
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let run = start(config(db, &extra), Arc::new(MemoryOffsetStore::new()));
            let err = tokio::time::timeout(Duration::from_secs(30), run.task)
                .await
                .expect("the connector did not stop")
                .unwrap()
                .unwrap_err();
            assert_eq!(
                outflow_core::Classify::class(&err),
                outflow_core::ErrorClass::Definite,
                "{err}"
            );
            err.to_string()
        }
    };

    // Too many connections (53300) passes by itself: transient, retried.
    let run = start(
        config(&db, &[("database.user", "no_connections")]),
        Arc::new(MemoryOffsetStore::new()),
    );
    crate::source_live::fails_with(run.task, outflow_core::ErrorClass::Transient).await;

    let text = run_to_error(vec![("database.user", "no_replication".into())]).await;
    assert!(
        text.contains("lacks the REPLICATION attribute") && text.contains("ALTER ROLE"),
        "{text}"
    );

    let text = run_to_error(vec![
        ("publication.autocreate.mode", "disabled".into()),
        ("publication.name", "missing_pub".into()),
        ("table.include.list", "public\\.ok_t".into()),
    ])
    .await;
    assert!(
        text.contains("missing_pub does not exist") && text.contains("CREATE PUBLICATION"),
        "{text}"
    );

    let text = run_to_error(vec![]).await;
    assert!(
        text.contains("public.keyless (REPLICA IDENTITY DEFAULT without a primary key)")
            && text.contains("REPLICA IDENTITY FULL")
            && text.contains("replica.identity.autoset.values"),
        "{text}"
    );
    // all_tables would publish the keyless table the connector does not capture: the
    // user's UPDATE/DELETE on it would start failing, so the publication is not made.
    let text = run_to_error(vec![("table.include.list", "public\\.ok_t".into())]).await;
    assert!(
        text.contains("publication.autocreate.mode=all_tables would publish")
            && text.contains("public.keyless (REPLICA IDENTITY DEFAULT without a primary key)")
            && text.contains("publication.autocreate.mode=filtered"),
        "{text}"
    );
    let publications: i64 = admin
        .query_one("SELECT count(*) FROM pg_publication", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(publications, 0, "no publication was created");
    admin
        .batch_execute("UPDATE keyless SET b = 'still writable'; DELETE FROM keyless")
        .await
        .unwrap();
    // Nothing was left behind by the failed starts: no slot.
    let slots: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&db.name()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0);

    // replica.identity.autoset.values fixes it at start.
    let run = start(
        config(
            &db,
            &[("replica.identity.autoset.values", "public\\.keyless:FULL")],
        ),
        Arc::new(MemoryOffsetStore::new()),
    );
    wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    let identity: String = admin
        .query_one(
            "SELECT relreplident::text FROM pg_class WHERE relname = 'keyless'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(identity, "f");
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
}

#[tokio::test]
async fn filtered_publication_grows_heartbeat_query_runs_and_slot_is_dropped_on_stop() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("lifecycle").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t1 (id int PRIMARY KEY);
             CREATE TABLE heartbeat_log (at timestamptz PRIMARY KEY DEFAULT clock_timestamp());",
        )
        .await
        .unwrap();
    let run = start(
        config(
            &db,
            &[
                ("publication.autocreate.mode", "filtered"),
                ("table.include.list", "public\\.t.*"),
                ("heartbeat.interval.ms", "100"),
                (
                    "heartbeat.action.query",
                    "INSERT INTO heartbeat_log DEFAULT VALUES",
                ),
                ("slot.drop.on.stop", "true"),
            ],
        ),
        Arc::new(MemoryOffsetStore::new()),
    );
    let published = |table: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_opt(
                    "SELECT 1 FROM pg_publication_tables WHERE pubname = 'dbz_publication' AND tablename = $1",
                    &[&table],
                )
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(wait_for(Duration::from_secs(30), || published("t1")).await);
    assert!(!published("heartbeat_log").await);
    // The heartbeat action query runs.
    let ran = wait_for(Duration::from_secs(30), || async {
        admin
            .query_one("SELECT count(*) FROM heartbeat_log", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            >= 3
    })
    .await;
    assert!(ran, "heartbeat.action.query did not run");

    // A table created later that the include list matches joins the publication, and its
    // changes arrive from then on.
    admin
        .batch_execute("CREATE TABLE t2 (id int PRIMARY KEY)")
        .await
        .unwrap();
    assert!(wait_for(Duration::from_secs(30), || published("t2")).await);
    admin
        .batch_execute("INSERT INTO t2 VALUES (1)")
        .await
        .unwrap();
    let events = wait_events(&run.sink, |e| {
        e.iter()
            .any(|e| matches!(&e.kind, EventKind::Insert { table, .. } if table.id.table == "t2"))
    })
    .await;
    assert!(events.iter().all(
        |e| !matches!(&e.kind, EventKind::Insert { table, .. } if table.id.table == "heartbeat_log")
    ));

    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    let slots: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&db.name()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0, "slot.drop.on.stop=true");
}
