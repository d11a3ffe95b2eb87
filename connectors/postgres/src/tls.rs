//! TLS for both of the connector's connections (catalog/snapshot queries and the
//! replication stream), per `database.sslmode` with libpq's meaning:
//!
//! | mode          | TLS                       | certificate checked | host name checked |
//! |---------------|---------------------------|---------------------|-------------------|
//! | `disable`     | never                     | –                   | –                 |
//! | `prefer`      | if the server offers it   | no                  | no                |
//! | `require`     | always                    | no                  | no                |
//! | `verify-ca`   | always                    | yes                 | no                |
//! | `verify-full` | always                    | yes                 | yes               |
//!
//! Certificates are checked against `database.sslrootcert` when set, else the system's
//! trust store. `database.sslcert` + `database.sslkey` (PEM, unencrypted PKCS#8 key)
//! present a client certificate. Files are read when connecting, not when validating.

use std::path::PathBuf;

/// `database.sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server supports it, without checks (Debezium's default).
    Prefer,
    /// TLS, without checks.
    Require,
    /// TLS, certificate chain checked.
    VerifyCa,
    /// TLS, certificate chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// Parses a libpq mode name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" | "allow" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" | "verify_ca" => Self::VerifyCa,
            "verify-full" | "verify_full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// Whether a server without TLS is refused.
    pub fn required(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }
}

/// TLS settings of a Postgres connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `database.sslmode`.
    pub mode: SslMode,
    /// `database.sslrootcert`: PEM file of trusted CA certificates.
    pub root_cert: Option<PathBuf>,
    /// `database.sslcert`: PEM client certificate.
    pub client_cert: Option<PathBuf>,
    /// `database.sslkey`: PEM (PKCS#8) key of the client certificate.
    pub client_key: Option<PathBuf>,
}

/// Why a TLS connector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {property} {path}")]
    Read {
        /// The property naming the file.
        property: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS library refused a certificate, key or setting.
    #[error("TLS setup failed ({what})")]
    Setup {
        /// What was being set up.
        what: &'static str,
        /// The TLS library's error.
        #[source]
        source: native_tls::Error,
    },
}

impl TlsError {
    /// The connector property to fix.
    pub fn property(&self) -> &'static str {
        match self {
            Self::Read { property, .. } => property,
            Self::Setup { what, .. } => what,
        }
    }
}

fn read(property: &'static str, path: &PathBuf) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        property,
        path: path.clone(),
        source,
    })
}

impl TlsSettings {
    /// The TLS connector for these settings; `None` when TLS is disabled.
    pub fn connector(&self) -> Result<Option<native_tls::TlsConnector>, TlsError> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let mut builder = native_tls::TlsConnector::builder();
        match self.mode {
            SslMode::Prefer | SslMode::Require => {
                builder
                    .danger_accept_invalid_certs(true)
                    .danger_accept_invalid_hostnames(true);
            }
            SslMode::VerifyCa => {
                builder.danger_accept_invalid_hostnames(true);
            }
            SslMode::VerifyFull | SslMode::Disable => {}
        }
        if let Some(path) = &self.root_cert {
            let pem = read("database.sslrootcert", path)?;
            let certificate =
                native_tls::Certificate::from_pem(&pem).map_err(|source| TlsError::Setup {
                    what: "database.sslrootcert",
                    source,
                })?;
            builder.add_root_certificate(certificate);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            let cert = read("database.sslcert", cert)?;
            let key = read("database.sslkey", key)?;
            let identity = native_tls::Identity::from_pkcs8(&cert, &key).map_err(|source| {
                TlsError::Setup {
                    what: "database.sslcert",
                    source,
                }
            })?;
            builder.identity(identity);
        }
        builder.build().map(Some).map_err(|source| TlsError::Setup {
            what: "database.sslmode",
            source,
        })
    }
}
