//! The Postgres connector's properties (Debezium's names), validated into a typed config
//! by a pure [`PostgresConfig::from_properties`]; nothing connects before it succeeds.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use outflow_core::config::NameFilter;
use outflow_core::config::PropertyError;

use crate::tls::{SslMode, TlsSettings};

/// The connector properties this crate acts on (names; an entry ending in `.` is a
/// prefix). The daemon reports every other property of a connector as accepted but not
/// acted on; keep this list in step with [`PostgresConfig::from_properties`].
pub const PROPERTIES: &[&str] = &[
    "database.hostname",
    "database.port",
    "database.user",
    "database.password",
    "database.dbname",
    "database.sslmode",
    "database.sslcert",
    "database.sslkey",
    "database.sslrootcert",
    "plugin.name",
    "slot.name",
    "slot.drop.on.stop",
    "slot.adopt.existing",
    "publication.name",
    "publication.autocreate.mode",
    "replica.identity.autoset.values",
    "snapshot.mode",
    "snapshot.max.threads",
    "snapshot.fetch.size",
    "schema.include.list",
    "schema.exclude.list",
    "table.include.list",
    "table.exclude.list",
    "heartbeat.interval.ms",
    "heartbeat.action.query",
    "status.update.interval.ms",
    "hstore.handling.mode",
];

/// `publication.autocreate.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationAutocreate {
    /// `CREATE PUBLICATION … FOR ALL TABLES` when missing.
    AllTables,
    /// `CREATE PUBLICATION … FOR TABLE <included tables>` when missing, kept in sync.
    Filtered,
    /// Never create; the publication must exist.
    Disabled,
}

/// `hstore.handling.mode`: how an `hstore` value is represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HstoreHandling {
    /// `json` (default): a JSON object as text, STRING `io.debezium.data.Json`.
    #[default]
    Json,
    /// `map`: a Connect MAP of STRING keys to optional STRING values.
    Map,
}

/// `snapshot.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Snapshot on first start, then stream.
    Initial,
    /// Snapshot, then stop.
    InitialOnly,
    /// Stream only (structure but no data).
    NoData,
    /// Stream only.
    Never,
    /// Snapshot when there is no usable offset.
    WhenNeeded,
}

/// Validated configuration of a Postgres source.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `database.hostname`.
    pub host: String,
    /// `database.port`.
    pub port: u16,
    /// `database.user`.
    pub user: String,
    /// `database.password`.
    pub password: Option<String>,
    /// `database.dbname`.
    pub dbname: String,
    /// `database.sslmode`, `database.sslrootcert`, `database.sslcert`, `database.sslkey`.
    pub tls: TlsSettings,
    /// `slot.name`.
    pub slot_name: String,
    /// `publication.name`.
    pub publication_name: String,
    /// `publication.autocreate.mode`.
    pub publication_autocreate: PublicationAutocreate,
    /// `slot.drop.on.stop`.
    pub slot_drop_on_stop: bool,
    /// `slot.adopt.existing` (outflow; default false): take over an existing, idle slot
    /// of `slot.name` that this connector did not create (made by a DBA for it, or left
    /// by a consumer it replaces); it is recorded as the connector's from then on.
    pub slot_adopt_existing: bool,
    /// `snapshot.mode`.
    pub snapshot_mode: SnapshotMode,
    /// `snapshot.max.threads` (default 1): snapshot reader connections, each reading a
    /// table or a key range of one.
    pub snapshot_max_threads: usize,
    /// `snapshot.fetch.size` (default 10240): rows per unit of a large table's key-range
    /// split is a multiple of it.
    pub snapshot_fetch_size: u64,
    /// `schema.include.list` / `schema.exclude.list` (on the schema name).
    pub schemas: NameFilter,
    /// `table.include.list` / `table.exclude.list` (on `schema.table`).
    pub tables: NameFilter,
    /// `hstore.handling.mode`.
    pub hstore_handling: HstoreHandling,
    /// `heartbeat.interval.ms` (0 = off).
    pub heartbeat_interval: Option<Duration>,
    /// `status.update.interval.ms` (default 10 s).
    pub status_update_interval: Duration,
    /// `heartbeat.action.query`: run on the database at each heartbeat, so a database
    /// whose captured tables are idle still writes WAL the slot can advance over.
    pub heartbeat_action_query: Option<String>,
    /// `replica.identity.autoset.values`: `(table regex, identity)` pairs applied with
    /// `ALTER TABLE … REPLICA IDENTITY` at start.
    pub replica_identity_autoset: Vec<(regex::Regex, ReplicaIdentity)>,
    /// Where streamed in-progress transactions are spooled (anonymous files). Not a
    /// connector property: the system temp dir, or the daemon's data dir.
    pub spool_dir: std::path::PathBuf,
}

/// A table's `REPLICA IDENTITY` setting, as `replica.identity.autoset.values` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `DEFAULT`: the primary key.
    Default,
    /// `FULL`: the whole old row.
    Full,
    /// `NOTHING`.
    Nothing,
    /// `INDEX <name>`.
    Index(String),
}

impl ReplicaIdentity {
    /// The clause after `REPLICA IDENTITY`.
    pub fn clause(&self) -> String {
        match self {
            Self::Default => "DEFAULT".to_owned(),
            Self::Full => "FULL".to_owned(),
            Self::Nothing => "NOTHING".to_owned(),
            Self::Index(name) => {
                format!("USING INDEX {}", crate::replication::quote_identifier(name))
            }
        }
    }

    /// `pg_class.relreplident` of this setting.
    pub fn code(&self) -> char {
        match self {
            Self::Default => 'd',
            Self::Full => 'f',
            Self::Nothing => 'n',
            Self::Index(_) => 'i',
        }
    }
}

/// Parses `schema.table:IDENTITY,…` (Debezium's `replica.identity.autoset.values`; the
/// table part is a regular expression matched against the whole `schema.table`).
fn replica_identity_autoset(
    value: &str,
) -> Result<Vec<(regex::Regex, ReplicaIdentity)>, PropertyError> {
    let property = "replica.identity.autoset.values";
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((table, identity)) = entry.rsplit_once(':') else {
            return Err(PropertyError::new(
                property,
                value,
                "expected schema.table:IDENTITY entries separated by commas",
            ));
        };
        let regex = regex::Regex::new(&format!("^(?:{})$", table.trim()))
            .map_err(|e| PropertyError::new(property, value, e.to_string()))?;
        let identity = identity.trim();
        let upper = identity.to_ascii_uppercase();
        let identity = match upper.as_str() {
            "DEFAULT" => ReplicaIdentity::Default,
            "FULL" => ReplicaIdentity::Full,
            "NOTHING" => ReplicaIdentity::Nothing,
            _ => match upper.strip_prefix("INDEX ") {
                Some(_) => ReplicaIdentity::Index(identity[6..].trim().to_owned()),
                None => {
                    return Err(PropertyError::new(
                        property,
                        value,
                        "identity must be DEFAULT, FULL, NOTHING or INDEX <name>",
                    ));
                }
            },
        };
        out.push((regex, identity));
    }
    Ok(out)
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("dbname", &self.dbname)
            .field("tls", &self.tls)
            .field("slot_name", &self.slot_name)
            .field("publication_name", &self.publication_name)
            .field("snapshot_mode", &self.snapshot_mode)
            .field("hstore_handling", &self.hstore_handling)
            .finish_non_exhaustive()
    }
}

fn millis(
    props: &BTreeMap<String, String>,
    property: &str,
    default: u64,
) -> Result<u64, PropertyError> {
    match props.get(property) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| PropertyError::new(property, v, "expected a number of milliseconds")),
    }
}

impl PostgresConfig {
    /// Reads and checks the connector properties. Pure: no I/O.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, PropertyError> {
        let required = |property: &str| {
            props
                .get(property)
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .ok_or_else(|| PropertyError::new(property, "", "required"))
        };
        let port = match props.get("database.port") {
            None => 5432,
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| PropertyError::new("database.port", v, "expected a port number"))?,
        };
        let ssl_mode = match props.get("database.sslmode") {
            None => SslMode::Prefer,
            Some(v) => SslMode::parse(v.trim()).ok_or_else(|| {
                PropertyError::new(
                    "database.sslmode",
                    v,
                    "expected disable, prefer, require, verify-ca or verify-full",
                )
            })?,
        };
        let path = |property: &str| {
            props
                .get(property)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from)
        };
        let tls = TlsSettings {
            mode: ssl_mode,
            root_cert: path("database.sslrootcert"),
            client_cert: path("database.sslcert"),
            client_key: path("database.sslkey"),
        };
        let given = |p: &Option<std::path::PathBuf>| p.as_ref().map(|_| "set");
        outflow_core::config::both_or_neither(
            ("database.sslcert", given(&tls.client_cert)),
            ("database.sslkey", given(&tls.client_key)),
        )?;
        if let Some(plugin) = props.get("plugin.name")
            && plugin != "pgoutput"
        {
            return Err(PropertyError::new(
                "plugin.name",
                plugin,
                "outflow decodes pgoutput only",
            ));
        }
        let identifier = |property: &str, default: &str| -> Result<String, PropertyError> {
            let value = props
                .get(property)
                .cloned()
                .unwrap_or_else(|| default.to_owned());
            if value.is_empty()
                || value.len() > 63
                || !value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(PropertyError::new(
                    property,
                    &value,
                    "lower-case letters, digits and _ only, at most 63 characters",
                ));
            }
            Ok(value)
        };
        let tables = NameFilter::from_properties(props, "table")?;
        let schemas = NameFilter::from_properties(props, "schema")?;
        let heartbeat = millis(props, "heartbeat.interval.ms", 0)?;
        Ok(Self {
            host: required("database.hostname")?,
            port,
            user: required("database.user")?,
            password: props.get("database.password").cloned(),
            dbname: required("database.dbname")?,
            tls,
            slot_name: identifier("slot.name", "debezium")?,
            publication_name: identifier("publication.name", "dbz_publication")?,
            publication_autocreate: match props
                .get("publication.autocreate.mode")
                .map(String::as_str)
            {
                None | Some("all_tables") => PublicationAutocreate::AllTables,
                Some("filtered") => PublicationAutocreate::Filtered,
                Some("disabled") => PublicationAutocreate::Disabled,
                Some(other) => {
                    return Err(PropertyError::new(
                        "publication.autocreate.mode",
                        other,
                        "expected all_tables, filtered or disabled",
                    ));
                }
            },
            slot_drop_on_stop: match props.get("slot.drop.on.stop").map(String::as_str) {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(PropertyError::new(
                        "slot.drop.on.stop",
                        other,
                        "expected true or false",
                    ));
                }
            },
            hstore_handling: match props.get("hstore.handling.mode").map(|v| v.trim()) {
                None | Some("json") => HstoreHandling::Json,
                Some("map") => HstoreHandling::Map,
                Some(other) => {
                    return Err(PropertyError::new(
                        "hstore.handling.mode",
                        other,
                        "expected json or map",
                    ));
                }
            },
            slot_adopt_existing: match props.get("slot.adopt.existing").map(String::as_str) {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(PropertyError::new(
                        "slot.adopt.existing",
                        other,
                        "expected true or false",
                    ));
                }
            },
            snapshot_mode: match props.get("snapshot.mode").map(String::as_str) {
                None | Some("initial") => SnapshotMode::Initial,
                Some("initial_only") => SnapshotMode::InitialOnly,
                Some("no_data") => SnapshotMode::NoData,
                Some("never") => SnapshotMode::Never,
                Some("when_needed") => SnapshotMode::WhenNeeded,
                Some(other) => {
                    return Err(PropertyError::new(
                        "snapshot.mode",
                        other,
                        "expected initial, initial_only, no_data, never or when_needed",
                    ));
                }
            },
            snapshot_max_threads: match props.get("snapshot.max.threads") {
                None => 1,
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| {
                        PropertyError::new("snapshot.max.threads", v, "expected 1 to 64")
                    })?,
            },
            snapshot_fetch_size: match props.get("snapshot.fetch.size") {
                None => 10_240,
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        PropertyError::new("snapshot.fetch.size", v, "expected a positive number")
                    })?,
            },
            schemas,
            tables,
            heartbeat_interval: (heartbeat > 0).then(|| Duration::from_millis(heartbeat)),
            status_update_interval: Duration::from_millis(
                millis(props, "status.update.interval.ms", 10_000)?.max(100),
            ),
            heartbeat_action_query: props
                .get("heartbeat.action.query")
                .map(|q| q.trim().to_owned())
                .filter(|q| !q.is_empty()),
            replica_identity_autoset: replica_identity_autoset(
                props
                    .get("replica.identity.autoset.values")
                    .map_or("", String::as_str),
            )?,
            spool_dir: std::env::temp_dir(),
        })
    }

    /// Whether `schema.table` is captured: its schema passes the schema lists and its
    /// `schema.table` the table lists (Debezium applies both).
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        self.schemas.matches(schema) && self.tables.matches(&format!("{schema}.{table}"))
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
            ("database.hostname", "h"),
            ("database.user", "u"),
            ("database.dbname", "d"),
            ("database.password", "secret"),
        ]
    }

    #[test]
    fn defaults_and_filters() {
        let mut p = base();
        p.push(("table.include.list", "public\\.orders,inventory\\..*"));
        let c = PostgresConfig::from_properties(&props(&p)).unwrap();
        assert_eq!(
            (c.port, c.slot_name.as_str(), c.publication_name.as_str()),
            (5432, "debezium", "dbz_publication")
        );
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert!(c.captures("public", "orders") && c.captures("inventory", "x"));
        assert!(!c.captures("public", "orders_old"));
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn every_bad_property_is_named() {
        for (k, v) in [
            ("database.port", "five"),
            ("slot.name", "Bad-Name"),
            ("publication.autocreate.mode", "sometimes"),
            ("snapshot.mode", "always"),
            ("plugin.name", "decoderbufs"),
            ("database.sslmode", "sometimes"),
            ("table.include.list", "(("),
            ("heartbeat.interval.ms", "soon"),
            ("slot.drop.on.stop", "maybe"),
            ("replica.identity.autoset.values", "public.t:SOMETIMES"),
            ("replica.identity.autoset.values", "public.t"),
            ("snapshot.max.threads", "0"),
            ("snapshot.fetch.size", "-1"),
            ("hstore.handling.mode", "hash"),
        ] {
            let mut p = base();
            p.push((k, v));
            assert_eq!(
                PostgresConfig::from_properties(&props(&p))
                    .unwrap_err()
                    .property,
                k
            );
        }
        // A client certificate needs its key: the error names the missing one.
        let mut p = base();
        p.push(("database.sslcert", "/c.pem"));
        assert_eq!(
            PostgresConfig::from_properties(&props(&p))
                .unwrap_err()
                .property,
            "database.sslkey"
        );
        let mut p = base();
        p.push((
            "replica.identity.autoset.values",
            "public\\.a.*:FULL, public.b:index b_idx,x.y:DEFAULT",
        ));
        let c = PostgresConfig::from_properties(&props(&p)).unwrap();
        let identities: Vec<String> = c
            .replica_identity_autoset
            .iter()
            .map(|(r, i)| format!("{} {}", r.as_str(), i.clause()))
            .collect();
        assert_eq!(
            identities,
            [
                "^(?:public\\.a.*)$ FULL",
                "^(?:public.b)$ USING INDEX \"b_idx\"",
                "^(?:x.y)$ DEFAULT"
            ]
        );
        let err =
            PostgresConfig::from_properties(&props(&[("database.hostname", "h")])).unwrap_err();
        assert_eq!(err.property, "database.user");
    }
}
