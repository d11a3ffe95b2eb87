//! outflow-testkit: the real-service test lab.
//!
//! Tests talk to real servers, never to the machine's own services and never to fakes:
//! [`postgres()`], [`mariadb()`], [`broker()`], [`registry()`], [`s3()`], [`nats()`] and
//! [`debezium()`] (Debezium on Kafka Connect) each start a private server on a free loopback port in a temp dir the first time a test process asks, and
//! share it with every test of that process (`cargo test` runs each integration-test
//! binary as one process). Tests isolate themselves with their own database
//! ([`PostgresServer::create_database`], [`MariaDbServer::create_database`]) or topic /
//! subject prefix ([`unique_name`]).
//!
//! Servers stop when the test process exits, however it exits: an `atexit` handler stops
//! them on a normal exit (also when tests failed), and `PR_SET_PDEATHSIG` has the kernel
//! kill them if the process dies abruptly. A missing server binary fails the test with the
//! command that installs it; nothing is ever skipped.
//!
//! Start-up is synchronous (blocking for a second or two on first use), so these
//! functions work from sync tests and from any tokio runtime.
#![allow(clippy::panic, clippy::expect_used)] // A lab that cannot start must fail the test loudly.

mod broker;
mod debezium;
mod hangup;
mod mariadb;
mod nats;
mod postgres;
mod process;
mod registry;
mod s3;
pub mod sink_conformance;
mod sys;
mod tls_terminator;
mod tools;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub use broker::{CONSUMER_SETTINGS, KafkaBroker, kafka_version};
pub use debezium::{DebeziumWorker, connector_class as debezium_connector_class};
pub use hangup::HangupProxy;
pub use mariadb::{
    CDC_PASSWORD, CDC_TLS_USER, CDC_USER, MariaDbDatabase, MariaDbServer, SERVER_ID,
};
pub use nats::NatsServer;
pub use postgres::{CERT_USER, PASSWORD_USERS, PostgresDatabase, PostgresServer, TLS_ONLY_USER};
pub use registry::SchemaRegistry;
pub use s3::S3Server;
pub use tls_terminator::ClientAuth;
pub use tools::lab_bin_dir;

static POSTGRES: LazyLock<PostgresServer> = LazyLock::new(PostgresServer::start);
static MARIADB: LazyLock<MariaDbServer> = LazyLock::new(MariaDbServer::start);
static BROKER: LazyLock<KafkaBroker> = LazyLock::new(KafkaBroker::start);
static REGISTRY: LazyLock<SchemaRegistry> = LazyLock::new(SchemaRegistry::start);
static S3: LazyLock<S3Server> = LazyLock::new(S3Server::start);
static NATS: LazyLock<NatsServer> = LazyLock::new(NatsServer::start);
static DEBEZIUM: LazyLock<DebeziumWorker> = LazyLock::new(|| DebeziumWorker::start(broker()));

/// The process's PostgreSQL server (started on first use).
pub fn postgres() -> &'static PostgresServer {
    &POSTGRES
}

/// The process's MariaDB server (started on first use).
pub fn mariadb() -> &'static MariaDbServer {
    &MARIADB
}

/// A MariaDB server of its own, for a test that changes server-wide state (purges
/// binlogs, restarts it): started now, stopped when the test process exits.
pub fn dedicated_mariadb() -> &'static MariaDbServer {
    Box::leak(Box::new(MariaDbServer::start()))
}

/// A PostgreSQL server of its own, for a test that restarts it
/// ([`PostgresServer::restart`]) or changes server-wide state: started now, stopped when
/// the test process exits.
pub fn dedicated_postgres() -> &'static PostgresServer {
    Box::leak(Box::new(PostgresServer::start()))
}

/// The process's Apache Kafka broker (started on first use).
pub fn broker() -> &'static KafkaBroker {
    &BROKER
}

/// An Apache Kafka broker of its own, for a test that kills, restarts or pauses it:
/// started now, stopped when the test process exits.
pub fn dedicated_broker() -> &'static KafkaBroker {
    Box::leak(Box::new(KafkaBroker::start()))
}

/// The process's Kafka Connect worker with Debezium's connectors, writing to
/// [`broker()`] (both started on first use).
pub fn debezium() -> &'static DebeziumWorker {
    &DEBEZIUM
}

/// The process's schema registry (started on first use).
pub fn registry() -> &'static SchemaRegistry {
    &REGISTRY
}

/// A schema registry of its own, for a test that stops it (SIGSTOP) while others would
/// use the shared one: started now, stopped when the test process exits.
pub fn dedicated_registry() -> &'static SchemaRegistry {
    Box::leak(Box::new(SchemaRegistry::start()))
}

/// A broker of its own that speaks only TLS, with `certs`' `localhost` certificate,
/// demanding a client certificate when `client_auth` says so: started now, stopped when
/// the test process exits. Clients add [`KafkaBroker::client_settings`].
pub fn dedicated_tls_broker(
    certs: &TestCertificates,
    client_auth: ClientAuth,
) -> &'static KafkaBroker {
    Box::leak(Box::new(KafkaBroker::start_tls(certs, client_auth)))
}

/// A schema registry of its own that speaks only HTTPS, with `certs`' `localhost`
/// certificate: started now, stopped when the test process exits.
pub fn dedicated_tls_registry(
    certs: &TestCertificates,
    client_auth: ClientAuth,
) -> &'static SchemaRegistry {
    Box::leak(Box::new(SchemaRegistry::start_tls(certs, client_auth)))
}

/// The process's NATS server with JetStream (started on first use).
pub fn nats() -> &'static NatsServer {
    &NATS
}

/// The process's S3-API server (started on first use).
pub fn s3() -> &'static S3Server {
    &S3
}

/// A name unique within the lab (`<prefix>_<pid>_<n>`), usable as a database name,
/// topic prefix or subject prefix. `prefix` should be lowercase ASCII.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held. The way
/// tests wait: on a condition, never on a fixed sleep.
pub async fn wait_for<F, Fut>(timeout: std::time::Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
    }
}

/// A test CA and the certificates it issued, made with the `openssl` tool: a server
/// certificate for the name `localhost` (not for `127.0.0.1`) and a client certificate
/// for [`CERT_USER`]; keys are unencrypted PEM PKCS#8.
#[derive(Debug)]
pub struct TestCertificates {
    dir: std::path::PathBuf,
}

impl TestCertificates {
    /// Makes a new set in a lab directory of its own.
    pub fn new() -> Self {
        let dir = process::server_dir("tls").keep();
        postgres::make_certificates(&dir);
        Self { dir }
    }

    /// The CA's certificate (PEM).
    pub fn ca(&self) -> std::path::PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server's certificate and key (PEM).
    pub fn server(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        (self.dir.join("server.crt"), self.dir.join("server.key"))
    }

    /// The client's certificate and key (PEM), issued to [`CERT_USER`] by the test CA.
    pub fn client(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        (self.dir.join("client.crt"), self.dir.join("client.key"))
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs every file of a fuzz corpus directory through `target` (the fuzz target's body),
/// so the corpus that cargo-fuzz grew is replayed by the ordinary test run; returns how
/// many inputs ran. Fails the test when the directory holds no input. A panic inside
/// `target` names the input file.
pub fn replay_corpus(dir: &std::path::Path, target: impl Fn(&[u8])) -> usize {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("testkit: cannot read the corpus {}: {e}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    for file in &files {
        let data = std::fs::read(file)
            .unwrap_or_else(|e| panic!("testkit: cannot read {}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&data)));
        if outcome.is_err() {
            panic!("fuzz input {} panicked", file.display());
        }
    }
    files.len()
}
