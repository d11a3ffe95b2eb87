//! Debezium itself, as the oracle and the peer: a Kafka Connect worker running Debezium's
//! PostgreSQL, MySQL and MariaDB connectors against the lab's broker.
//!
//! The jars come from Maven Central through `scripts/install-lab.sh`: Connect's runtime
//! (`testkit/lab/debezium/worker.xml`, the version of the lab's broker) into
//! `<lab dir>/debezium/worker`, and each Debezium connector (`postgres.xml`, `mysql.xml`,
//! `mariadb.xml`) into a plugin directory of its own under `<lab dir>/debezium/plugins`,
//! so Connect loads each with its own class loader (the MariaDB connector is an older
//! release than the other two; isolation keeps their shared Debezium jars apart).
//!
//! The worker runs in standalone mode (one JVM, offsets in a file in its temp dir; the
//! REST API creates, inspects and deletes connectors as on a distributed worker) with
//! Connect's `JsonConverter` and `schemas.enable=true` for keys and values, the
//! converter the differential tests compare under. Plugins are found by Java's service
//! loader (`plugin.discovery=service_load`), which starts the worker in seconds instead
//! of the quarter minute a scan of every jar takes. The JVM gets the same modest heap as
//! the broker (`-Xmx512m`, serial GC) and full JIT, so its speed as a peer is fair.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::broker::{KafkaBroker, java, write, write_log4j2};
use crate::process;
use crate::tools;

/// How long a start may take before the lab gives up (it is ~4 s idle).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The plugin directories a worker loads, one per Debezium connector.
const PLUGINS: &[&str] = &["postgres", "mysql", "mariadb"];

/// A running Kafka Connect worker with Debezium's connectors, owned by this test process.
#[derive(Debug)]
pub struct DebeziumWorker {
    port: u16,
    pid: u32,
    dir: PathBuf,
    started_in: Duration,
}

impl DebeziumWorker {
    /// Starts a worker that writes to `broker`; returns when its REST API lists every
    /// Debezium connector.
    pub(crate) fn start(broker: &KafkaBroker) -> Self {
        let begun = Instant::now();
        let (worker_libs, plugins) = install_dirs();
        let java = java();
        let dir = process::server_dir("debezium");
        let path = dir.path().to_path_buf();
        let port = process::free_port();
        assert!(
            broker.client_settings().is_empty(),
            "testkit: the lab's Debezium runs against a plain broker only"
        );
        let config = format!(
            "bootstrap.servers={bootstrap}\n\
             key.converter=org.apache.kafka.connect.json.JsonConverter\n\
             value.converter=org.apache.kafka.connect.json.JsonConverter\n\
             key.converter.schemas.enable=true\n\
             value.converter.schemas.enable=true\n\
             offset.storage.file.filename={offsets}\n\
             offset.flush.interval.ms=500\n\
             listeners=http://127.0.0.1:{port}\n\
             plugin.path={plugins}\n\
             plugin.discovery=service_load\n\
             task.shutdown.graceful.timeout.ms=2000\n",
            bootstrap = broker.bootstrap_servers(),
            offsets = path.join("connect.offsets").display(),
            plugins = plugins.display(),
        );
        write(&path.join("worker.properties"), &config);
        write_log4j2(&path.join("log4j2.properties"), &path.join("connect.log"));
        let classpath = format!("{}/*", worker_libs.display());
        let stderr = std::fs::File::create(path.join("stderr.log"))
            .unwrap_or_else(|e| panic!("testkit: cannot create {}: {e}", path.display()));
        let mut command = Command::new(&java);
        command
            .args([
                "-Xms64m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-Djava.awt.headless=true",
            ])
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                path.join("log4j2.properties").display()
            ))
            .args(["-cp", &classpath])
            .arg("org.apache.kafka.connect.cli.ConnectStandalone")
            .arg(path.join("worker.properties"))
            .current_dir(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        // SIGKILL at exit: a test worker's offsets are thrown away with its directory.
        let pid = process::spawn("debezium", command, libc::SIGKILL, Some(dir));
        let log = path.join("connect.log");
        process::wait_ready(
            "debezium",
            pid,
            START_TIMEOUT,
            || {
                process::http(port, "GET", "/connector-plugins").is_some_and(|(status, body)| {
                    status == 200 && PLUGINS.iter().all(|p| body.contains(connector_class(p)))
                })
            },
            || {
                format!(
                    "{}\n{}",
                    process::log_tail(&log, 40),
                    process::log_tail(&path.join("stderr.log"), 20)
                )
            },
        );
        Self {
            port,
            pid,
            dir: path,
            started_in: begun.elapsed(),
        }
    }

    /// The REST API's base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// OS process id of the worker's JVM.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How long the start took, until every connector was listed.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The worker's resident memory now, in bytes (from `/proc`), for the lab's report.
    pub fn rss_bytes(&self) -> Option<u64> {
        process::rss_bytes(self.pid)
    }

    /// The last `lines` of the worker's log, for a failing test's message.
    pub fn log_tail(&self, lines: usize) -> String {
        process::log_tail(&self.dir.join("connect.log"), lines)
    }
}

/// The Debezium connector class in the plugin directory `plugin`.
pub fn connector_class(plugin: &str) -> &'static str {
    match plugin {
        "postgres" => "io.debezium.connector.postgresql.PostgresConnector",
        "mysql" => "io.debezium.connector.mysql.MySqlConnector",
        "mariadb" => "io.debezium.connector.mariadb.MariaDbConnector",
        other => panic!("testkit: no Debezium plugin {other}"),
    }
}

/// `<lab dir>/debezium/worker` and `<lab dir>/debezium/plugins`, or the install step
/// that makes them.
fn install_dirs() -> (PathBuf, PathBuf) {
    let root = std::env::var_os("OUTFLOW_DEBEZIUM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::lab_dir().join("debezium"));
    let worker = root.join("worker");
    let plugins = root.join("plugins");
    let holds = |dir: &Path, prefix: &str| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
    };
    let complete = holds(&worker, "connect-runtime-")
        && PLUGINS
            .iter()
            .all(|p| holds(&plugins.join(p), &format!("debezium-connector-{p}-")));
    if !complete {
        panic!(
            "testkit: Debezium is not installed in {}: run scripts/install-lab.sh (it \
             resolves testkit/lab/debezium/*.xml from Maven Central), or point \
             OUTFLOW_DEBEZIUM_DIR at a directory with worker/ and plugins/",
            root.display()
        );
    }
    (worker, plugins)
}
