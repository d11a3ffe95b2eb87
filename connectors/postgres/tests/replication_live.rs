//! The replication client against a real server: authentication methods, a slot with an
//! exported snapshot that snapshot readers import, streaming, status updates that move
//! `confirmed_flush_lsn`, and server errors with their SQLSTATE.

use std::time::Duration;

use outflow_postgres::pgoutput::{ColumnData, Decoder, Message};
use outflow_postgres::position::Lsn;
use outflow_postgres::replication::{
    ConnectOptions, ReplicationConnection, StreamMessage, postgres_now,
};
use outflow_postgres::types::SESSION_SETTINGS;
use outflow_testkit::{PostgresDatabase, postgres, wait_for};

fn options(db: &PostgresDatabase, user: &str, password: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        host: "127.0.0.1".into(),
        port: db.server().port(),
        user: user.into(),
        password: password.map(str::to_owned),
        dbname: db.name().into(),
        application_name: "outflow-test".into(),
        settings: SESSION_SETTINGS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        tls: None,
    }
}

#[tokio::test]
async fn password_authentication_methods() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("auth").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'outflow_scram') THEN
                 SET password_encryption = 'scram-sha-256';
                 CREATE ROLE outflow_scram LOGIN REPLICATION PASSWORD 'scram-pw';
               END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'outflow_md5') THEN
                 SET password_encryption = 'md5';
                 CREATE ROLE outflow_md5 LOGIN REPLICATION PASSWORD 'md5-pw';
               END IF;
             END $$",
        )
        .await
        .unwrap();
    for (user, password) in [("outflow_scram", "scram-pw"), ("outflow_md5", "md5-pw")] {
        // Over plain TCP and over TLS (where the server also offers SCRAM-SHA-256-PLUS).
        let plain = options(&db, user, Some(password));
        let tls = ConnectOptions {
            tls: Some((
                native_tls::TlsConnector::builder()
                    .danger_accept_invalid_certs(true)
                    .build()
                    .unwrap()
                    .into(),
                true,
            )),
            ..plain.clone()
        };
        for options in [plain, tls] {
            let mut conn = ReplicationConnection::connect(&options)
                .await
                .unwrap_or_else(|e| panic!("{user}: {e}"));
            let rows = conn.simple_query("IDENTIFY_SYSTEM").await.unwrap();
            assert_eq!(
                rows[0].get(3).cloned().flatten().as_deref(),
                Some(db.name())
            );
        }
        let wrong = ReplicationConnection::connect(&options(&db, user, Some("wrong")))
            .await
            .unwrap_err();
        assert_eq!(wrong.sqlstate(), Some("28P01"), "{user}: {wrong}");
        let missing = ReplicationConnection::connect(&options(&db, user, None))
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("database.password"),
            "{missing}"
        );
    }
    let debug = format!("{:?}", options(&db, "x", Some("hunter2")));
    assert!(!debug.contains("hunter2"));
}

#[tokio::test]
async fn exported_snapshot_and_stream_meet_without_gap_or_overlap() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("repl").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION pub FOR TABLE t",
        )
        .await
        .unwrap();
    admin
        .batch_execute("INSERT INTO t SELECT i, 'before' FROM generate_series(1, 100) i")
        .await
        .unwrap();

    let mut conn = ReplicationConnection::connect(&options(&db, "postgres", None))
        .await
        .unwrap();
    let slot = conn.create_slot(db.name(), true).await.unwrap();
    let snapshot = slot.snapshot.clone().expect("exported snapshot");
    assert!(slot.consistent_point > Lsn(0));

    // Written after the slot: in the stream, not in the snapshot.
    admin
        .batch_execute("INSERT INTO t SELECT i, 'after' FROM generate_series(101, 110) i")
        .await
        .unwrap();

    let reader = db.connect().await;
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    reader
        .batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'"))
        .await
        .unwrap();
    let seen: i64 = reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    reader.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        seen, 100,
        "the snapshot sees exactly the rows before the slot"
    );

    let mut stream = conn
        .start_replication(
            db.name(),
            Lsn(0),
            &[
                ("proto_version", "2"),
                ("publication_names", "pub"),
                ("streaming", "on"),
            ],
        )
        .await
        .unwrap();
    let mut decoder = Decoder::new();
    let mut streamed = Vec::new();
    let mut commit_end = Lsn(0);
    while streamed.len() < 10 {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("stream stalled")
            .unwrap()
            .unwrap();
        if let StreamMessage::XLogData { data, .. } = message {
            match decoder.decode(&data).unwrap() {
                Message::Insert { new, .. } => {
                    let ColumnData::Text(id) = new[0] else {
                        panic!()
                    };
                    streamed.push(String::from_utf8_lossy(id).parse::<i32>().unwrap());
                }
                Message::Commit { end_lsn, .. } => commit_end = Lsn(end_lsn),
                _ => {}
            }
        }
    }
    assert_eq!(
        streamed,
        (101..=110).collect::<Vec<_>>(),
        "the stream has exactly the rows after the slot"
    );
    while commit_end == Lsn(0) {
        if let Some(StreamMessage::XLogData { data, .. }) = stream.next().await.unwrap()
            && let Message::Commit { end_lsn, .. } = decoder.decode(&data).unwrap()
        {
            commit_end = Lsn(end_lsn);
        }
    }

    // Acknowledge: confirmed_flush_lsn follows what we report as flushed.
    stream
        .send_status(commit_end, commit_end, postgres_now(), false)
        .await
        .unwrap();
    let name = db.name().to_owned();
    let confirmed = wait_for(Duration::from_secs(30), || {
        let admin = &admin;
        let name = name.clone();
        async move {
            let lsn: String = admin
                .query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&name])
                .await
                .unwrap()
                .get(0);
            lsn.parse::<Lsn>().is_ok_and(|l| l >= commit_end)
        }
    })
    .await;
    assert!(confirmed, "confirmed_flush_lsn did not reach {commit_end}");
}

#[tokio::test]
async fn server_errors_carry_their_sqlstate() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("errs").await;
    let conn = ReplicationConnection::connect(&options(&db, "postgres", None))
        .await
        .unwrap();
    let err = conn
        .start_replication(
            "no_such_slot",
            Lsn(0),
            &[("proto_version", "1"), ("publication_names", "p")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("42704"), "{err}");
    let mut conn = ReplicationConnection::connect(&options(&db, "postgres", None))
        .await
        .unwrap();
    let err = conn.simple_query("SELEC 1").await.unwrap_err();
    assert_eq!(err.sqlstate(), Some("42601"));
    // The connection stays usable after an error.
    assert_eq!(
        conn.simple_query("SELECT 1").await.unwrap(),
        vec![vec![Some("1".to_owned())]]
    );
}
