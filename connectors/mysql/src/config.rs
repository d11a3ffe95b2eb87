//! The MySQL / MariaDB connector's properties (Debezium's names), validated into a typed
//! config by a pure [`MySqlConfig::from_properties`]; nothing connects before it succeeds.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use outflow_core::config::NameFilter;
use outflow_core::config::PropertyError;

/// Which server family the connector talks to (from `connector.class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MySQL 8 (`io.debezium.connector.mysql.MySqlConnector`).
    MySql,
    /// MariaDB 10.6+ (`io.debezium.connector.mariadb.MariaDbConnector`).
    MariaDb,
}

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot on first start, then stream.
    Initial,
    /// Snapshot, then stop.
    InitialOnly,
    /// Stream only, from the current binlog position (`no_data`, `schema_only`).
    NoData,
    /// Stream only, from the current position (Debezium's `never` reads from the oldest
    /// binlog; outflow starts at the current position, see docs/compatibility.md).
    Never,
    /// Snapshot when there is no usable offset (none, or its binlog was purged).
    WhenNeeded,
}

/// `database.ssl.mode`, Debezium's values and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it, without checks (the default).
    Preferred,
    /// TLS, without checks.
    Required,
    /// TLS, the certificate chain checked against `database.ssl.truststore`.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyIdentity,
}

/// TLS settings of the connections (catalog, snapshot and binlog alike).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `database.ssl.mode`.
    pub mode: SslMode,
    /// `database.ssl.truststore`: CA certificates (PEM) to check the server's chain
    /// against; the system's trust store when unset.
    pub truststore: Option<std::path::PathBuf>,
    /// `database.ssl.keystore`: a client certificate and key (PKCS#12).
    pub keystore: Option<std::path::PathBuf>,
    /// `database.ssl.keystore.password`.
    pub keystore_password: Option<String>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("mode", &self.mode)
            .field("truststore", &self.truststore)
            .field("keystore", &self.keystore)
            .field(
                "keystore_password",
                &self.keystore_password.as_ref().map(|_| "********"),
            )
            .finish()
    }
}

impl TlsConfig {
    /// Reads `database.ssl.*`. Debezium's truststores are JKS files; outflow reads PEM
    /// (a JKS or PKCS#12 truststore is refused with the command that converts it).
    fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, PropertyError> {
        let mode = match props
            .get("database.ssl.mode")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => SslMode::Preferred,
            Some(v) => match v.as_str() {
                "disabled" => SslMode::Disabled,
                "preferred" => SslMode::Preferred,
                "required" => SslMode::Required,
                "verify_ca" => SslMode::VerifyCa,
                "verify_identity" => SslMode::VerifyIdentity,
                _ => {
                    return Err(PropertyError::new(
                        "database.ssl.mode",
                        &v,
                        "expected disabled, preferred, required, verify_ca or verify_identity",
                    ));
                }
            },
        };
        let path = |key: &str| {
            props
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from)
        };
        let truststore = path("database.ssl.truststore");
        if let Some(store) = &truststore {
            let name = store.to_string_lossy().to_ascii_lowercase();
            if [".jks", ".p12", ".pfx", ".pkcs12"]
                .iter()
                .any(|e| name.ends_with(e))
            {
                return Err(PropertyError::new(
                    "database.ssl.truststore",
                    store.to_string_lossy().as_ref(),
                    "outflow reads CA certificates as PEM; export them with `keytool -exportcert -rfc -keystore <store> -alias <ca> -file ca.pem`",
                ));
            }
        }
        Ok(Self {
            mode,
            truststore,
            keystore: path("database.ssl.keystore"),
            keystore_password: props.get("database.ssl.keystore.password").cloned(),
        })
    }
}

/// `snapshot.locking.mode`, with Debezium's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotLocking {
    /// A global read lock (`FLUSH TABLES WITH READ LOCK`) only while the views start and
    /// the binlog position is read (MySQL always; MariaDB only when the lock-free views'
    /// coordinates keep disagreeing, and not at all without RELOAD).
    Minimal,
    /// The global read lock held until every row is read (writes wait meanwhile).
    Extended,
    /// No lock ever: MariaDB reads each view's own coordinates (one connection when
    /// several views disagree); MySQL reads the position before its one view starts, so
    /// a change committed in between may arrive twice (never lost).
    None,
}

/// Validated configuration of a MySQL / MariaDB source.
#[derive(Clone)]
pub struct MySqlConfig {
    /// Server family.
    pub flavor: Flavor,
    /// `database.hostname`.
    pub host: String,
    /// `database.port` (default 3306).
    pub port: u16,
    /// `database.user`.
    pub user: String,
    /// `database.password`.
    pub password: Option<String>,
    /// `database.ssl.*`.
    pub tls: TlsConfig,
    /// `database.server.id`: this client's id among the server's replicas (required,
    /// unique).
    pub server_id: u32,
    /// `database.include.list` / `database.exclude.list`.
    pub databases: NameFilter,
    /// `table.include.list` / `table.exclude.list` (on `database.table`).
    pub tables: NameFilter,
    /// `snapshot.mode`.
    pub snapshot_mode: SnapshotMode,
    /// `snapshot.locking.mode` (default `minimal`).
    pub snapshot_locking: SnapshotLocking,
    /// `snapshot.fetch.size` (default 10240): rows per batch of a snapshot read.
    pub snapshot_fetch_size: usize,
    /// `snapshot.max.threads` (default 1): connections reading tables (and key ranges of
    /// large tables) at once, all in one consistent view.
    pub snapshot_max_threads: usize,
    /// `heartbeat.interval.ms` (0 = off).
    pub heartbeat_interval: Option<Duration>,
    /// `connect.timeout.ms` (default 30 s).
    pub connect_timeout: Duration,
    /// `include.query`: fill `source.query` (needs the statement in the binlog).
    pub include_query: bool,
    /// `bigint.unsigned.handling.mode`: `precise` (BIGINT UNSIGNED as a decimal) rather
    /// than `long` (the default; values above 2^63 − 1 wrap).
    pub bigint_unsigned_precise: bool,
}

impl fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConfig")
            .field("flavor", &self.flavor)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("tls", &self.tls)
            .field("server_id", &self.server_id)
            .field("snapshot_mode", &self.snapshot_mode)
            .finish_non_exhaustive()
    }
}

/// The connector properties this crate acts on (names; an entry ending in `.` is a
/// prefix). The daemon reports every other property of a connector as accepted but not
/// acted on; keep this list in step with [`MySqlConfig::from_properties`].
pub const PROPERTIES: &[&str] = &[
    "database.hostname",
    "database.port",
    "database.user",
    "database.password",
    "database.server.id",
    "database.ssl.mode",
    "database.ssl.truststore",
    "database.ssl.keystore",
    "database.ssl.keystore.password",
    "database.include.list",
    "database.exclude.list",
    "table.include.list",
    "table.exclude.list",
    "snapshot.mode",
    "snapshot.locking.mode",
    "snapshot.max.threads",
    "snapshot.fetch.size",
    "heartbeat.interval.ms",
    "connect.timeout.ms",
    "include.query",
    "bigint.unsigned.handling.mode",
];

/// Debezium's MySQL connector class.
pub const MYSQL_CLASS: &str = "io.debezium.connector.mysql.MySqlConnector";
/// Debezium's MariaDB connector class.
pub const MARIADB_CLASS: &str = "io.debezium.connector.mariadb.MariaDbConnector";

fn number<T: std::str::FromStr>(
    props: &BTreeMap<String, String>,
    key: &str,
    default: T,
    check: impl Fn(&T) -> bool,
    what: &str,
) -> Result<T, PropertyError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<T>()
            .ok()
            .filter(|n| check(n))
            .ok_or_else(|| PropertyError::new(key, v, what)),
    }
}

impl MySqlConfig {
    /// Reads the connector's properties. Pure: no I/O.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, PropertyError> {
        let required = |property: &str| {
            props
                .get(property)
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| PropertyError::new(property, "", "required"))
        };
        let flavor = match props.get("connector.class").map(String::as_str) {
            Some(MARIADB_CLASS | "MariaDbConnector" | "MariaDb" | "mariadb") => Flavor::MariaDb,
            _ => Flavor::MySql,
        };
        let server_id = match props.get("database.server.id") {
            None => {
                return Err(PropertyError::new(
                    "database.server.id",
                    "",
                    "required: a number unique among the server's replicas and other connectors",
                ));
            }
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    PropertyError::new(
                        "database.server.id",
                        v,
                        "expected a number from 1 to 4294967295",
                    )
                })?,
        };
        let snapshot_mode = match props.get("snapshot.mode").map(|v| v.trim()) {
            None | Some("initial") => SnapshotMode::Initial,
            Some("initial_only") => SnapshotMode::InitialOnly,
            Some("no_data" | "schema_only") => SnapshotMode::NoData,
            Some("never") => SnapshotMode::Never,
            Some("when_needed") => SnapshotMode::WhenNeeded,
            Some(other) => {
                return Err(PropertyError::new(
                    "snapshot.mode",
                    other,
                    "expected initial, initial_only, no_data, never or when_needed",
                ));
            }
        };
        let bigint_unsigned_precise =
            match props.get("bigint.unsigned.handling.mode").map(|v| v.trim()) {
                None | Some("long") => false,
                Some("precise") => true,
                Some(other) => {
                    return Err(PropertyError::new(
                        "bigint.unsigned.handling.mode",
                        other,
                        "expected long or precise",
                    ));
                }
            };
        let heartbeat_ms: u64 = number(
            props,
            "heartbeat.interval.ms",
            0,
            |_| true,
            "expected milliseconds",
        )?;
        let include_query = match props.get("include.query").map(|v| v.trim()) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(PropertyError::new(
                    "include.query",
                    other,
                    "expected true or false",
                ));
            }
        };
        let tls = TlsConfig::from_properties(props)?;
        Ok(Self {
            tls,
            flavor,
            host: required("database.hostname")?,
            port: number(
                props,
                "database.port",
                3306,
                |p| *p > 0,
                "expected a port number",
            )?,
            user: required("database.user")?,
            password: props.get("database.password").cloned(),
            server_id,
            databases: NameFilter::from_properties(props, "database")?,
            tables: NameFilter::from_properties(props, "table")?,
            snapshot_mode,
            snapshot_locking: match props.get("snapshot.locking.mode").map(|v| v.trim()) {
                None | Some("minimal") => SnapshotLocking::Minimal,
                Some("extended") => SnapshotLocking::Extended,
                Some("none") => SnapshotLocking::None,
                Some(other @ ("minimal_percona" | "custom")) => {
                    return Err(PropertyError::new(
                        "snapshot.locking.mode",
                        other,
                        "not supported by outflow; use minimal (brief global read lock, MariaDB often none), extended (lock held for the whole snapshot) or none (no lock)",
                    ));
                }
                Some(other) => {
                    return Err(PropertyError::new(
                        "snapshot.locking.mode",
                        other,
                        "expected minimal, extended or none",
                    ));
                }
            },
            snapshot_fetch_size: number(
                props,
                "snapshot.fetch.size",
                10_240,
                |n| *n > 0,
                "expected a positive number",
            )?,
            snapshot_max_threads: number(
                props,
                "snapshot.max.threads",
                1,
                |n| (1..=64).contains(n),
                "expected a number of threads from 1 to 64",
            )?,
            heartbeat_interval: (heartbeat_ms > 0).then(|| Duration::from_millis(heartbeat_ms)),
            connect_timeout: Duration::from_millis(number(
                props,
                "connect.timeout.ms",
                30_000,
                |n| *n > 0,
                "expected milliseconds",
            )?),
            include_query,
            bigint_unsigned_precise,
        })
    }

    /// Whether `database`.`table` is captured.
    pub fn captures(&self, database: &str, table: &str) -> bool {
        self.databases.matches(database) && self.tables.matches(&format!("{database}.{table}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("connector.class", MARIADB_CLASS),
            ("database.hostname", "127.0.0.1"),
            ("database.user", "cdc"),
            ("database.password", "pw-secret"),
            ("database.server.id", "5400"),
        ]
    }

    #[test]
    fn defaults_secrets_and_errors_naming_the_property() {
        let config = MySqlConfig::from_properties(&props(&base())).unwrap();
        assert_eq!(config.flavor, Flavor::MariaDb);
        assert_eq!(config.port, 3306);
        assert_eq!(config.snapshot_mode, SnapshotMode::Initial);
        assert!(!format!("{config:?}").contains("pw-secret"));
        for (key, value) in [
            ("database.server.id", "0"),
            ("database.server.id", "x"),
            ("database.port", "70000"),
            ("snapshot.mode", "sometimes"),
            ("bigint.unsigned.handling.mode", "huge"),
            ("snapshot.max.threads", "0"),
            ("include.query", "yes"),
            ("table.include.list", "(("),
        ] {
            let mut p = base();
            p.retain(|(k, _)| *k != key);
            p.push((key, value));
            let e = MySqlConfig::from_properties(&props(&p)).unwrap_err();
            assert_eq!(e.property, key, "{value}");
        }
        let mut p = base();
        p.retain(|(k, _)| *k != "database.server.id");
        assert_eq!(
            MySqlConfig::from_properties(&props(&p))
                .unwrap_err()
                .property,
            "database.server.id"
        );
    }

    #[test]
    fn filters_apply_to_database_and_table() {
        let mut p = base();
        p.push(("table.include.list", "shop\\.orders"));
        let config = MySqlConfig::from_properties(&props(&p)).unwrap();
        assert!(config.captures("shop", "orders"));
        assert!(!config.captures("shop", "customers"));
    }
}
