//! TLS to MariaDB per `database.ssl.mode`: a user the server admits only over TLS
//! snapshots and streams with `verify_identity` against the test CA; the host-name check
//! fails for an address the certificate does not name, `verify_ca` accepts it, and
//! `disabled` is refused by the server — each failure a definite error that says so. A
//! server that hangs up under the handshake (a restart) is a transient error instead.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use outflow_core::{MemoryOffsetStore, MemorySink, MemorySinkMode, Pipeline, PipelineConfig};
use outflow_testkit::{CDC_TLS_USER, HangupProxy, mariadb};
use tokio_util::sync::CancellationToken;

use crate::mariadb_live::{drain_until, row_ops, source_on};

async fn failure(source: outflow_mysql::MySqlSource) -> String {
    let error = Pipeline::new(
        "tls",
        source,
        MemorySink::new(MemorySinkMode::Immediate),
        Arc::new(MemoryOffsetStore::new()),
        PipelineConfig::default(),
    )
    .run(CancellationToken::new())
    .await;
    let error = error.expect_err("the connection must fail");
    // The whole chain: the status a user sees shows it.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_modes_against_a_tls_only_user() {
    let server = mariadb();
    let db = server.create_database("mytls").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();
    let ca = server.tls_root_cert().display().to_string();
    let tls = |mode: &'static str, host: &'static str| {
        vec![
            ("database.user", CDC_TLS_USER),
            ("database.hostname", host),
            ("database.ssl.mode", mode),
        ]
    };

    // verify_identity: the certificate names `localhost`.
    let mut props = tls("verify_identity", "localhost");
    props.push(("database.ssl.truststore", ca.as_str()));
    let offsets = Arc::new(MemoryOffsetStore::new());
    let source = source_on(server, db.name(), 6201, &props);
    let events = drain_until("tls", source, Arc::clone(&offsets), |events| {
        row_ops(events).len() >= 2
    })
    .await;
    assert_eq!(row_ops(&events), [("r".to_owned(), 1), ("r".to_owned(), 2)]);
    // The binlog over TLS, resuming after the snapshot.
    conn.query_drop("INSERT INTO t VALUES (3)").await.unwrap();
    let source = source_on(server, db.name(), 6201, &props);
    let events = drain_until("tls", source, offsets, |events| {
        row_ops(events).contains(&("c".to_owned(), 3))
    })
    .await;
    assert_eq!(row_ops(&events), [("c".to_owned(), 3)]);

    // The address is not in the certificate: verify_identity fails, verify_ca passes.
    let mut props = tls("verify_identity", "127.0.0.1");
    props.push(("database.ssl.truststore", ca.as_str()));
    let error = failure(source_on(server, db.name(), 6202, &props)).await;
    assert!(
        !error.contains("transient")
            && error.contains("database.ssl.truststore")
            && error.contains("IP address mismatch"),
        "{error}"
    );
    let mut props = tls("verify_ca", "127.0.0.1");
    props.push(("database.ssl.truststore", ca.as_str()));
    let events = drain_until(
        "tls-ca",
        source_on(server, db.name(), 6203, &props),
        Arc::new(MemoryOffsetStore::new()),
        |events| row_ops(events).len() >= 3,
    )
    .await;
    assert_eq!(row_ops(&events).len(), 3);
    // Without the CA the chain does not verify.
    let error = failure(source_on(
        server,
        db.name(),
        6204,
        &tls("verify_ca", "127.0.0.1"),
    ))
    .await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    // Plain TCP: the server refuses the TLS-only user.
    let error = failure(source_on(
        server,
        db.name(),
        6205,
        &tls("disabled", "127.0.0.1"),
    ))
    .await;
    assert!(error.contains("Access denied"), "{error}");
    // `preferred` (the default) uses TLS when offered: the TLS-only user gets in.
    let events = drain_until(
        "tls-preferred",
        source_on(server, db.name(), 6206, &[("database.user", CDC_TLS_USER)]),
        Arc::new(MemoryOffsetStore::new()),
        |events| row_ops(events).len() >= 3,
    )
    .await;
    assert_eq!(row_ops(&events).len(), 3);
}

/// A server that closes the socket under the TLS handshake, as a restarting MariaDB does,
/// fails the attempt with a transient error (the connector retries), never with the
/// definite "check your TLS settings" one; the next connection goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_hangs_up_under_the_tls_handshake_is_retried() {
    let server = mariadb();
    let db = server.create_database("myhangup").await;
    let mut conn = db.connect().await;
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    // The client's SSL request is a 4-byte packet header and 32 bytes: the cut falls on
    // the ClientHello that follows it.
    let proxy = HangupProxy::start(server.port(), 1, 36);
    let port = proxy.port().to_string();
    let props = [
        ("database.user", CDC_TLS_USER),
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.ssl.mode", "required"),
    ];
    let error = failure(source_on(server, db.name(), 6211, &props)).await;
    assert_eq!(proxy.hung_up(), 1, "{error}");
    assert!(error.contains("(transient)"), "{error}");
    let events = drain_until(
        "tls-hangup",
        source_on(server, db.name(), 6212, &props),
        Arc::new(MemoryOffsetStore::new()),
        |events| !row_ops(events).is_empty(),
    )
    .await;
    assert_eq!(row_ops(&events), [("r".to_owned(), 1)]);
}
