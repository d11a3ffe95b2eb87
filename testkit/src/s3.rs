//! A private S3-API server: moto's server mode (PyPI `moto[server]`), objects in memory.
//!
//! Used by the lake sink's object-store tests; it speaks the S3 REST API (path-style,
//! any credentials accepted). Buckets are made with [`S3Server::create_bucket`].

use std::process::Command;
use std::time::Duration;

use crate::process;
use crate::tools;

/// A running S3-API server owned by this test process.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    pid: u32,
}

impl S3Server {
    pub(crate) fn start() -> Self {
        let binary = tools::find_binary(
            "moto_server",
            "OUTFLOW_MOTO_BIN",
            "scripts/install-lab.sh (installs moto[server]==5.2.5 from PyPI)",
        );
        let dir = process::server_dir("s3");
        let log = dir.path().join("s3.log");
        let port = process::free_port();
        let mut command = Command::new(binary);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .unwrap_or_else(|e| panic!("testkit: cannot create {}: {e}", log.display())),
            );
        let pid = process::spawn("moto_server", command, libc::SIGTERM, Some(dir));
        process::wait_ready(
            "moto_server",
            pid,
            Duration::from_secs(60),
            || process::http(port, "GET", "/").is_some_and(|(status, _)| status == 200),
            || process::log_tail(&log, 30),
        );
        Self { port, pid }
    }

    /// Endpoint URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// OS process id (chaos tests pause it with SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Creates bucket `name` (idempotent).
    pub fn create_bucket(&self, name: &str) {
        let status = process::http(self.port, "PUT", &format!("/{name}")).map(|(status, _)| status);
        assert!(
            status.is_some_and(|s| s == 200 || s == 409),
            "testkit: creating bucket {name} answered {status:?}"
        );
    }
}
