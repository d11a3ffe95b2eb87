//! `database.sslmode` and certificates, on both connections (queries and replication),
//! against the testkit server's TLS (a test CA, a TLS-only user, a certificate user), and
//! a server that hangs up under the handshake.

use std::sync::Arc;
use std::time::Duration;

use outflow_core::{EventKind, MemoryOffsetStore, Value};
use outflow_testkit::{CERT_USER, HangupProxy, PostgresDatabase, TLS_ONLY_USER, postgres};

use crate::source_live::{config, reset_capture, start, wait_events, walsender_gone};

async fn create_roles(admin: &tokio_postgres::Client) {
    for role in [TLS_ONLY_USER, CERT_USER] {
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE {role} LOGIN REPLICATION; \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            ))
            .await
            .unwrap();
    }
}

/// Runs the connector with `extra` until it fails; the error's text.
async fn start_error(db: &PostgresDatabase, extra: &[(&str, &str)]) -> String {
    let run = start(config(db, extra), Arc::new(MemoryOffsetStore::new()));
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
    // The whole chain: the server's message is in a source.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Snapshot and stream one row each with `extra`; both connections use TLS.
async fn capture_over_tls(
    db: &PostgresDatabase,
    admin: &tokio_postgres::Client,
    extra: &[(&str, &str)],
) {
    let run = start(config(db, extra), Arc::new(MemoryOffsetStore::new()));
    wait_events(&run.sink, |e| {
        e.iter().any(|e| matches!(e.kind, EventKind::Heartbeat))
    })
    .await;
    admin
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    wait_events(&run.sink, |e| {
        e.iter().any(
            |e| matches!(&e.kind, EventKind::Insert { after, .. } if after[0] == Value::Int32(2)),
        )
    })
    .await;
    let encrypted: Vec<(String, bool)> = admin
        .query(
            "SELECT a.application_name::text, s.ssl FROM pg_stat_activity a \
             JOIN pg_stat_ssl s ON s.pid = a.pid \
             WHERE a.datname = $1 AND a.application_name LIKE 'outflow %' ORDER BY 1",
            &[&db.name()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        encrypted.iter().any(|(a, _)| a == "outflow catalog")
            && encrypted
                .iter()
                .any(|(a, _)| a == &format!("outflow {}", db.name()))
            && encrypted.iter().all(|(_, ssl)| *ssl),
        "{encrypted:?}"
    );
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(admin, db).await;
    // The next capture starts afresh (a new store): its slot must not be this one, which
    // a connector without the record of having made it would refuse to drop.
    reset_capture(admin, db, "DELETE FROM t WHERE id = 2;").await;
}

#[tokio::test]
async fn sslmodes_and_certificates_on_both_connections() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("tls").await;
    let admin = db.connect().await;
    create_roles(&admin).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
             GRANT SELECT ON t TO {TLS_ONLY_USER}, {CERT_USER};
             ALTER TABLE t OWNER TO {TLS_ONLY_USER};
             CREATE PUBLICATION dbz_publication FOR TABLE t;"
        ))
        .await
        .unwrap();
    let server = db.server();
    let root = server.tls_root_cert().display().to_string();
    let (cert, key) = server.client_certificate();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());

    // The TLS-only user is refused without TLS...
    let text = start_error(
        &db,
        &[
            ("database.user", TLS_ONLY_USER),
            ("database.sslmode", "disable"),
        ],
    )
    .await;
    assert!(
        text.contains("no encryption") || text.contains("pg_hba.conf"),
        "{text}"
    );
    // ...and captures with require (no checks), verify-ca and verify-full.
    capture_over_tls(
        &db,
        &admin,
        &[
            ("database.user", TLS_ONLY_USER),
            ("database.sslmode", "require"),
        ],
    )
    .await;
    capture_over_tls(
        &db,
        &admin,
        &[
            ("database.user", TLS_ONLY_USER),
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", &root),
            ("database.hostname", "localhost"),
        ],
    )
    .await;
    // The default (prefer) uses TLS when the server offers it.
    capture_over_tls(&db, &admin, &[("database.user", TLS_ONLY_USER)]).await;
    // Client certificate authentication.
    capture_over_tls(
        &db,
        &admin,
        &[
            ("database.user", CERT_USER),
            ("database.sslmode", "verify-ca"),
            ("database.sslrootcert", &root),
            ("database.sslcert", &cert),
            ("database.sslkey", &key),
        ],
    )
    .await;

    // Checks that fail: the test CA is not in the system trust store; an address the
    // certificate does not name; a missing file.
    let text = start_error(&db, &[("database.sslmode", "verify-ca")]).await;
    assert!(text.contains("database.sslmode"), "{text}");
    let text = start_error(
        &db,
        &[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", &root),
            // The certificate names localhost, not 127.0.0.1 (config's default host).
        ],
    )
    .await;
    assert!(
        text.contains("database.sslmode") || text.contains("TLS"),
        "{text}"
    );
    let text = start_error(
        &db,
        &[
            ("database.sslmode", "verify-full"),
            ("database.sslrootcert", "/nonexistent/ca.pem"),
        ],
    )
    .await;
    assert!(
        text.contains("database.sslrootcert") && text.contains("/nonexistent/ca.pem"),
        "{text}"
    );
}

/// A server that closes the socket under the TLS handshake (a restart or shutdown does)
/// fails the attempt with a transient error, so the connector retries; never with the
/// definite "check database.sslmode" one. The next connection goes through.
#[tokio::test]
async fn a_server_that_hangs_up_under_the_tls_handshake_is_retried() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("tlshangup").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
             CREATE PUBLICATION dbz_publication FOR TABLE t;",
        )
        .await
        .unwrap();
    // The SSLRequest is 8 bytes: the cut falls on the ClientHello after it.
    let proxy = HangupProxy::start(db.server().port(), 1, 8);
    let port = proxy.port().to_string();
    let extra = [
        ("database.port", port.as_str()),
        ("database.sslmode", "require"),
    ];
    let run = start(config(&db, &extra), Arc::new(MemoryOffsetStore::new()));
    let err = tokio::time::timeout(Duration::from_secs(30), run.task)
        .await
        .expect("the connector did not stop")
        .unwrap()
        .unwrap_err();
    assert_eq!(proxy.hung_up(), 1, "{err}");
    assert_eq!(
        outflow_core::Classify::class(&err),
        outflow_core::ErrorClass::Transient,
        "{err}"
    );
    let run = start(config(&db, &extra), Arc::new(MemoryOffsetStore::new()));
    wait_events(&run.sink, |e| {
        e.iter().any(
            |e| matches!(&e.kind, EventKind::Read { after, .. } if after[0] == Value::Int32(1)),
        )
    })
    .await;
    run.shutdown.cancel();
    run.task.await.unwrap().unwrap();
    walsender_gone(&admin, &db).await;
}
