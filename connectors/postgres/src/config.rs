//! The Postgres connector's properties (Debezium's names), validated into a typed config
//! by a pure [`PostgresConfig::from_properties`]; nothing connects before it succeeds.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use outflow_core::envelope::PropertyError;
use outflow_core::envelope::config::NameFilter;

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
    /// `slot.name`.
    pub slot_name: String,
    /// `publication.name`.
    pub publication_name: String,
    /// `publication.autocreate.mode`.
    pub publication_autocreate: PublicationAutocreate,
    /// `slot.drop.on.stop`.
    pub slot_drop_on_stop: bool,
    /// `snapshot.mode`.
    pub snapshot_mode: SnapshotMode,
    /// `table.include.list` / `table.exclude.list`.
    pub tables: NameFilter,
    /// `heartbeat.interval.ms` (0 = off).
    pub heartbeat_interval: Option<Duration>,
    /// `status.update.interval.ms` (default 10 s).
    pub status_update_interval: Duration,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("dbname", &self.dbname)
            .field("slot_name", &self.slot_name)
            .field("publication_name", &self.publication_name)
            .field("snapshot_mode", &self.snapshot_mode)
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
        if let Some(mode) = props.get("database.sslmode")
            && mode != "disable"
        {
            return Err(PropertyError::new(
                "database.sslmode",
                mode,
                "only disable is supported so far",
            ));
        }
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
        let heartbeat = millis(props, "heartbeat.interval.ms", 0)?;
        Ok(Self {
            host: required("database.hostname")?,
            port,
            user: required("database.user")?,
            password: props.get("database.password").cloned(),
            dbname: required("database.dbname")?,
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
            tables,
            heartbeat_interval: (heartbeat > 0).then(|| Duration::from_millis(heartbeat)),
            status_update_interval: Duration::from_millis(
                millis(props, "status.update.interval.ms", 10_000)?.max(100),
            ),
        })
    }

    /// Whether `schema.table` is captured.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        self.tables.matches(&format!("{schema}.{table}"))
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
            ("database.sslmode", "require"),
            ("table.include.list", "(("),
            ("heartbeat.interval.ms", "soon"),
            ("slot.drop.on.stop", "maybe"),
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
        let err =
            PostgresConfig::from_properties(&props(&[("database.hostname", "h")])).unwrap_err();
        assert_eq!(err.property, "database.user");
    }
}
