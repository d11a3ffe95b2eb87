//! TLS in front of a lab server that speaks only plain TCP: stunnel, from Debian.
//!
//! Neither lab server we need TLS for can serve it itself: tansu 0.6 takes `--cert` but
//! still answers in plain text, and rivven-schema 0.0.22 has no TLS option. A
//! TLS-terminating proxy is what operators put in front of such servers, and it is what
//! the client under test really meets: a TLS handshake with the test CA's `localhost`
//! certificate, optionally demanding a client certificate, then the server's own
//! protocol inside. The proxy listens on `127.0.0.1` only; clients name it `localhost`
//! so the certificate's name verifies.

use std::process::Command;
use std::time::Duration;

use crate::TestCertificates;
use crate::process;
use crate::tools;

/// Whether the terminator demands a client certificate signed by the test CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Any client may connect (server authentication only).
    None,
    /// Mutual TLS: a handshake without a certificate of the test CA is refused.
    Required,
}

/// A running stunnel that accepts TLS on [`TlsTerminator::port`] and forwards the plain
/// stream to a backend port.
#[derive(Debug)]
pub(crate) struct TlsTerminator {
    port: u16,
}

impl TlsTerminator {
    /// Starts stunnel on `port` (a free port the caller picked, because a broker must
    /// advertise it before the terminator exists) forwarding to `127.0.0.1:backend`.
    pub(crate) fn start(
        name: &str,
        port: u16,
        backend: u16,
        certs: &TestCertificates,
        client_auth: ClientAuth,
    ) -> Self {
        let stunnel = tools::find_binary(
            "stunnel",
            "OUTFLOW_STUNNEL_BIN",
            "scripts/install-lab.sh (installs Debian's stunnel4)",
        );
        let dir = process::server_dir(&format!("{name}-tls"));
        let log = dir.path().join("stunnel.log");
        let (cert, key) = certs.server();
        let verify = match client_auth {
            ClientAuth::None => String::new(),
            ClientAuth::Required => format!(
                "CAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
                certs.ca().display()
            ),
        };
        let config = format!(
            "foreground = yes\npid =\noutput = {log}\ndebug = notice\nsyslog = no\n\
             [{name}]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend}\n\
             cert = {cert}\nkey = {key}\n{verify}",
            log = log.display(),
            cert = cert.display(),
            key = key.display(),
        );
        let config_file = dir.path().join("stunnel.conf");
        if let Err(e) = std::fs::write(&config_file, config) {
            panic!("testkit: cannot write {}: {e}", config_file.display());
        }
        let mut command = Command::new(stunnel);
        command
            .arg(&config_file)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let pid = process::spawn("stunnel", command, libc::SIGTERM, Some(dir));
        process::wait_ready(
            "stunnel",
            pid,
            Duration::from_secs(30),
            || process::port_open(port),
            || process::log_tail(&log, 30),
        );
        Self { port }
    }

    /// The TLS port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}
