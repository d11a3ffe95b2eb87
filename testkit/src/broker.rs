//! A private Apache Kafka broker: Kafka's own jars (the version pinned in
//! `testkit/lab/kafka/pom.xml`), one KRaft node that is broker and controller at once,
//! on free loopback ports in a lab directory.
//!
//! The jars come from Maven Central through `scripts/install-lab.sh`
//! (`mvn dependency:copy-dependencies` into `<lab dir>/kafka-<version>/libs`); the
//! broker runs on the machine's Java 17 with a small heap (`-Xmx512m`, serial GC). A
//! start formats the log directory (`kafka.tools.StorageTool format`, one short JVM)
//! and then runs `kafka.Kafka`; it is ready when its log says the server started. The
//! log directory survives [`KafkaBroker::restart`], so a broker killed with SIGKILL
//! comes back with its topics, committed transactions and group offsets, as a real
//! deployment does. Transactions work on one node: the transaction-state and offsets
//! topics are configured with replication factor 1 and min ISR 1. A restarted node must
//! wait out its previous incarnation's broker session, so the session is short (3 s); a
//! transaction past its timeout is aborted within a second.
//!
//! A TLS broker ([`KafkaBroker::start_tls`]) serves Kafka's own SSL listener with the
//! test certificates (PEM key store and trust store), advertised as `localhost`, the
//! name the certificate is for; its inter-broker and controller listeners stay plain on
//! loopback, unseen by clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::TestCertificates;
use crate::process;
use crate::tls_terminator::ClientAuth;
use crate::tools;

/// Consumer settings for test consumers: quick session timeouts, so a consumer left by a
/// failed test does not hold a partition for long.
pub const CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
];

/// The pinned Kafka version: `<kafka.version>` of `testkit/lab/kafka/pom.xml`.
pub fn kafka_version() -> &'static str {
    const POM: &str = include_str!("../lab/kafka/pom.xml");
    POM.split_once("<kafka.version>")
        .and_then(|(_, rest)| rest.split_once("</kafka.version>"))
        .map(|(version, _)| version.trim())
        .unwrap_or_else(|| panic!("testkit: lab/kafka/pom.xml names no <kafka.version>"))
}

/// How long a start may take before the lab gives up (the JVM's start is ~3 s idle).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running broker owned by this test process.
#[derive(Debug)]
pub struct KafkaBroker {
    port: u16,
    pid: AtomicU32,
    dir: PathBuf,
    tls: Option<Vec<(String, String)>>,
    started_in: Duration,
}

impl KafkaBroker {
    pub(crate) fn start() -> Self {
        Self::launch(None)
    }

    /// A broker reachable only over TLS: clients see one SSL listener, advertised as
    /// `localhost:<port>`, demanding a client certificate when `client_auth` says so.
    pub(crate) fn start_tls(certs: &TestCertificates, client_auth: ClientAuth) -> Self {
        Self::launch(Some((certs, client_auth)))
    }

    fn launch(tls: Option<(&TestCertificates, ClientAuth)>) -> Self {
        let begun = Instant::now();
        let libs = libs_dir();
        let java = java();
        let dir = process::server_dir("kafka");
        let path = dir.path().to_path_buf();
        let (port, internal, controller) = (
            process::free_port(),
            process::free_port(),
            process::free_port(),
        );
        let mut listeners = format!(
            "listeners=INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}"
        );
        let mut advertised = format!("advertised.listeners=INTERNAL://127.0.0.1:{internal}");
        let mut extra = String::new();
        let mut client = Vec::new();
        match tls {
            None => {
                listeners.push_str(&format!(",CLIENT://127.0.0.1:{port}"));
                advertised.push_str(&format!(",CLIENT://127.0.0.1:{port}"));
                extra.push_str("listener.security.protocol.map=INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,CLIENT:PLAINTEXT\n");
            }
            Some((certs, client_auth)) => {
                listeners.push_str(&format!(",CLIENT://127.0.0.1:{port}"));
                advertised.push_str(&format!(",CLIENT://localhost:{port}"));
                let keystore = path.join("server-keystore.pem");
                write_keystore(certs, &keystore);
                extra.push_str(&format!(
                    "listener.security.protocol.map=INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,CLIENT:SSL\n\
                     listener.name.client.ssl.keystore.type=PEM\n\
                     listener.name.client.ssl.keystore.location={}\n\
                     listener.name.client.ssl.truststore.type=PEM\n\
                     listener.name.client.ssl.truststore.location={}\n\
                     listener.name.client.ssl.client.auth={}\n",
                    keystore.display(),
                    certs.ca().display(),
                    match client_auth {
                        ClientAuth::Required => "required",
                        ClientAuth::None => "none",
                    }
                ));
                client.push(("security.protocol".to_owned(), "ssl".to_owned()));
                client.push((
                    "ssl.ca.location".to_owned(),
                    certs.ca().display().to_string(),
                ));
                if client_auth == ClientAuth::Required {
                    let (cert, key) = certs.client();
                    client.push((
                        "ssl.certificate.location".to_owned(),
                        cert.display().to_string(),
                    ));
                    client.push(("ssl.key.location".to_owned(), key.display().to_string()));
                }
            }
        }
        let config = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=INTERNAL\n\
             {listeners}\n\
             {advertised}\n\
             {extra}\
             log.dirs={data}\n\
             num.partitions=1\n\
             auto.create.topics.enable=true\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=5\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             transaction.state.log.num.partitions=5\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             broker.heartbeat.interval.ms=500\n\
             broker.session.timeout.ms=3000\n\
             transaction.abort.timed.out.transaction.cleanup.interval.ms=1000\n",
            data = path.join("data").display(),
        );
        let properties = path.join("server.properties");
        write(&properties, &config);
        write_log4j2(&path.join("log4j2.properties"), &path.join("broker.log"));
        let classpath = format!("{}/*", libs.display());
        process::run(
            "kafka storage format",
            Command::new(&java)
                .args(["-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", &classpath])
                .args(["kafka.tools.StorageTool", "format"])
                // `=`: an id may begin with `-`.
                .arg(format!("--cluster-id={}", cluster_id()))
                .arg("-c")
                .arg(&properties)
                .current_dir(&path),
        );
        let recipe_dir = path.clone();
        let recipe = Box::new(move || {
            // Each start logs afresh, so readiness reads this start's log; the previous
            // one is kept beside it for post-mortems.
            let log = recipe_dir.join("broker.log");
            let _ = std::fs::rename(&log, recipe_dir.join("broker.log.previous"));
            let mut command = Command::new(&java);
            command
                .args([
                    "-Xms128m",
                    "-Xmx512m",
                    "-XX:+UseSerialGC",
                    "-Djava.awt.headless=true",
                ])
                .arg(format!(
                    "-Dlog4j2.configurationFile={}",
                    recipe_dir.join("log4j2.properties").display()
                ))
                .args(["-cp", &classpath, "kafka.Kafka"])
                .arg(recipe_dir.join("server.properties"))
                .current_dir(&recipe_dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(
                    std::fs::File::create(recipe_dir.join("stderr.log")).unwrap_or_else(|e| {
                        panic!("testkit: cannot create {}: {e}", recipe_dir.display())
                    }),
                );
            command
        });
        // SIGKILL at exit: nothing of a test broker needs a clean shutdown.
        let pid = process::spawn_restartable("kafka", recipe, libc::SIGKILL, Some(dir));
        let broker = Self {
            port,
            pid: AtomicU32::new(pid),
            dir: path,
            tls: tls.map(|_| client),
            started_in: Duration::ZERO,
        };
        broker.wait_started(pid);
        Self {
            started_in: begun.elapsed(),
            ..broker
        }
    }

    fn wait_started(&self, pid: u32) {
        let log = self.dir.join("broker.log");
        process::wait_ready(
            "kafka",
            pid,
            START_TIMEOUT,
            || {
                std::fs::read_to_string(&log)
                    .is_ok_and(|text| text.contains("Kafka Server started"))
                    && process::port_open(self.port)
            },
            || {
                format!(
                    "{}\n{}",
                    process::log_tail(&log, 40),
                    process::log_tail(&self.dir.join("stderr.log"), 20)
                )
            },
        );
    }

    /// Stops the broker with `signal` (SIGKILL: a crash) and starts it again on the
    /// same ports from the same log directory; returns when it serves again. For a
    /// broker of a test's own ([`crate::dedicated_broker`]).
    pub fn restart(&self, signal: libc::c_int) {
        let pid = process::restart(self.pid(), Some(signal));
        self.pid.store(pid, Ordering::SeqCst);
        self.wait_started(pid);
    }

    /// `bootstrap.servers` for clients: `127.0.0.1:<port>`, or `localhost:<port>` for a
    /// TLS broker (the name its certificate is for).
    pub fn bootstrap_servers(&self) -> String {
        let host = if self.tls.is_some() {
            "localhost"
        } else {
            "127.0.0.1"
        };
        format!("{host}:{}", self.port)
    }

    /// librdkafka settings a client needs besides `bootstrap.servers`: none for a plain
    /// broker; `security.protocol`, `ssl.ca.location` (and the test client certificate
    /// and key when the broker demands one) for a TLS broker.
    pub fn client_settings(&self) -> Vec<(String, String)> {
        self.tls.clone().unwrap_or_default()
    }

    /// OS process id of the broker's JVM (chaos tests pause it with SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// How long the first start took, formatting included.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The broker's resident memory now, in bytes (from `/proc`), for the lab's report.
    pub fn rss_bytes(&self) -> Option<u64> {
        process::rss_bytes(self.pid())
    }
}

/// `<lab dir>/kafka-<version>/libs`, or the install step that makes it.
fn libs_dir() -> PathBuf {
    let libs = std::env::var_os("OUTFLOW_KAFKA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            tools::lab_dir()
                .join(format!("kafka-{}", kafka_version()))
                .join("libs")
        });
    let has_broker = std::fs::read_dir(&libs).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
    });
    if !has_broker {
        panic!(
            "testkit: Apache Kafka {} is not installed ({} holds no kafka_2.13 jar): run \
             scripts/install-lab.sh (it resolves testkit/lab/kafka/pom.xml from Maven \
             Central), or point OUTFLOW_KAFKA_LIBS at the jars",
            kafka_version(),
            libs.display()
        );
    }
    libs
}

/// The `java` to run (for Kafka and Kafka Connect): `$JAVA_HOME/bin/java`, else the one on `PATH`.
pub(crate) fn java() -> PathBuf {
    let java = std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/java"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("java"));
    let works = Command::new(&java)
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        panic!(
            "testkit: no Java to run Kafka with ({} does not run): install a JDK 17 \
             (scripts/install-lab.sh checks for it) or set JAVA_HOME",
            java.display()
        );
    }
    java
}

/// A new KRaft cluster id: 16 random bytes in URL-safe base64 without padding (the
/// form Kafka's `Uuid` parses).
fn cluster_id() -> String {
    use std::io::Read as _;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 18];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes[..16]))
        .unwrap_or_else(|e| panic!("testkit: cannot read /dev/urandom: {e}"));
    // 18 bytes are 24 characters; the last two stand for the padding bytes.
    let mut id: String = bytes
        .chunks(3)
        .flat_map(|c| {
            let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
            (0..4)
                .rev()
                .map(move |i| ALPHABET[(n >> (6 * i) & 63) as usize] as char)
        })
        .collect();
    id.truncate(22);
    id
}

/// The server's key and certificate in one PEM file: Kafka's PEM key store.
fn write_keystore(certs: &TestCertificates, to: &Path) {
    let (cert, key) = certs.server();
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("testkit: cannot read {}: {e}", p.display()))
    };
    write(to, &format!("{}\n{}", read(&key), read(&cert)));
}

pub(crate) fn write(path: &Path, text: &str) {
    std::fs::write(path, text)
        .unwrap_or_else(|e| panic!("testkit: cannot write {}: {e}", path.display()));
}

/// A log4j2 configuration at `path` that logs at info level to the file `log`: how the
/// lab's JVMs (the broker, Kafka Connect) leave a log that explains a failed start.
pub(crate) fn write_log4j2(path: &Path, log: &Path) {
    write(
        path,
        &format!(
            "status = error\n\
             appender.file.type = File\n\
             appender.file.name = file\n\
             appender.file.fileName = {}\n\
             appender.file.layout.type = PatternLayout\n\
             appender.file.layout.pattern = [%d] %p %m (%c)%n\n\
             rootLogger.level = info\n\
             rootLogger.appenderRef.file.ref = file\n",
            log.display()
        ),
    );
}
