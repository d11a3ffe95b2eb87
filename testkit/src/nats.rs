//! A private NATS server with JetStream (`nats-server`, built from the Go module proxy by
//! scripts/install-lab.sh), its store in a temp dir.
//!
//! Used by the NATS sink's tests. Tests isolate themselves by stream and subject
//! ([`crate::unique_name`]).

use std::process::Command;
use std::time::Duration;

use crate::process;
use crate::tools;

/// A running NATS server owned by this test process.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    pid: u32,
}

impl NatsServer {
    pub(crate) fn start() -> Self {
        let binary = tools::find_binary(
            "nats-server",
            "OUTFLOW_NATS_BIN",
            "scripts/install-lab.sh (builds nats-server v2.15.3 from the Go module proxy)",
        );
        let dir = process::server_dir("nats");
        let log = dir.path().join("nats.log");
        let store = dir.path().join("jetstream");
        let port = process::free_port();
        let mut command = Command::new(binary);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(["-l"])
            .arg(&log)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let pid = process::spawn("nats-server", command, libc::SIGTERM, Some(dir));
        process::wait_ready(
            "nats-server",
            pid,
            Duration::from_secs(60),
            || std::fs::read_to_string(&log).is_ok_and(|text| text.contains("Server is ready")),
            || process::log_tail(&log, 30),
        );
        Self { port, pid }
    }

    /// Client URL, e.g. `nats://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// OS process id (tests pause it with SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}
