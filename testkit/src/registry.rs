//! A private Confluent-API schema registry: rivven-schema, in memory.
//!
//! Known differences from Confluent's registry (see `docs/testing.md`): `POST
//! /subjects/{subject}` (lookup) answers 405; schemas come back in canonical form.

use std::process::Command;
use std::time::Duration;

use crate::TestCertificates;
use crate::process;
use crate::tls_terminator::{ClientAuth, TlsTerminator};
use crate::tools;

/// A running registry owned by this test process.
#[derive(Debug)]
pub struct SchemaRegistry {
    port: u16,
    pid: u32,
    tls: Option<TlsTerminator>,
}

impl SchemaRegistry {
    pub(crate) fn start() -> Self {
        let (port, pid) = Self::start_rivven();
        Self {
            port,
            pid,
            tls: None,
        }
    }

    /// A registry reachable only over HTTPS (stunnel in front of rivven-schema, see
    /// `tls_terminator`), at `https://localhost:<port>`.
    pub(crate) fn start_tls(certs: &TestCertificates, client_auth: ClientAuth) -> Self {
        let (backend, pid) = Self::start_rivven();
        let terminator = TlsTerminator::start(
            "registry",
            process::free_port(),
            backend,
            certs,
            client_auth,
        );
        Self {
            port: terminator.port(),
            pid,
            tls: Some(terminator),
        }
    }

    fn start_rivven() -> (u16, u32) {
        let binary = tools::find_binary(
            "rivven-schema",
            "OUTFLOW_RIVVEN_SCHEMA_BIN",
            "scripts/install-lab.sh (runs cargo install rivven-schema --version 0.0.22 --locked)",
        );
        let dir = process::server_dir("registry");
        let log = dir.path().join("registry.log");
        let port = process::free_port();
        let mut command = Command::new(binary);
        command
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .unwrap_or_else(|e| panic!("testkit: cannot create {}: {e}", log.display())),
            );
        let pid = process::spawn("rivven-schema", command, libc::SIGTERM, Some(dir));
        process::wait_ready(
            "rivven-schema",
            pid,
            Duration::from_secs(30),
            || process::http(port, "GET", "/subjects").is_some_and(|(status, _)| status == 200),
            || process::log_tail(&log, 30),
        );
        (port, pid)
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`, or `https://localhost:40123` for a
    /// registry behind TLS.
    pub fn url(&self) -> String {
        if self.tls.is_some() {
            format!("https://localhost:{}", self.port)
        } else {
            format!("http://127.0.0.1:{}", self.port)
        }
    }

    /// OS process id (chaos tests pause it with SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}
