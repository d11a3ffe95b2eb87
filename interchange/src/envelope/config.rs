//! The connector properties the envelope honours, validated into a typed config.
//!
//! [`EnvelopeConfig::from_properties`] is pure: it reads Debezium's property names from
//! the connector's flat string map and returns either a typed config or a
//! [`PropertyError`] naming the property. Properties not listed here are left to the
//! other layers (the source, the sink) to validate.

use std::collections::BTreeMap;

pub use outflow_core::config::{NameFilter, PropertyError, regex_list};
use outflow_core::source_block::SourceBlock;

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalHandlingMode {
    /// `org.apache.kafka.connect.data.Decimal` (or VariableScaleDecimal).
    Precise,
    /// FLOAT64.
    Double,
    /// STRING.
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePrecisionMode {
    /// Millisecond or microsecond types by column precision (Postgres default).
    Adaptive,
    /// Like adaptive, but TIME always in microseconds (MySQL default).
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's own Date/Time/Timestamp (milliseconds).
    Connect,
}

/// `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryHandlingMode {
    /// BYTES.
    Bytes,
    /// Base64 STRING.
    Base64,
    /// URL-safe Base64 STRING.
    Base64UrlSafe,
    /// Hex STRING.
    Hex,
}

/// `interval.handling.mode` (Postgres).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalHandlingMode {
    /// INT64 microseconds, `io.debezium.time.MicroDuration`.
    Numeric,
    /// ISO-8601 STRING, `io.debezium.time.Interval`.
    String,
}

/// Operations that `skipped.operations` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `c`.
    Create,
    /// `u`.
    Update,
    /// `d`.
    Delete,
    /// `t`.
    Truncate,
}

/// How change events become records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeConfig {
    /// Record shapes of which connector: its `source` block and defaults.
    pub source: &'static dyn SourceBlock,
    /// `topic.prefix`.
    pub topic_prefix: String,
    /// `database.dbname` (Postgres `source.db`; MySQL uses the table's database).
    pub database: String,
    /// `decimal.handling.mode`.
    pub decimal_mode: DecimalHandlingMode,
    /// `time.precision.mode`.
    pub time_mode: TimePrecisionMode,
    /// `binary.handling.mode`.
    pub binary_mode: BinaryHandlingMode,
    /// `interval.handling.mode`.
    pub interval_mode: IntervalHandlingMode,
    /// `tombstones.on.delete`.
    pub tombstones_on_delete: bool,
    /// `provide.transaction.metadata`.
    pub provide_transaction_metadata: bool,
    /// `skipped.operations` (Debezium's default skips truncates).
    pub skipped_operations: Vec<Operation>,
    /// `unavailable.value.placeholder`.
    pub unavailable_placeholder: String,
    /// `topic.heartbeat.prefix` (`__debezium-heartbeat`).
    pub heartbeat_prefix: String,
    /// `topic.transaction` (`transaction`): topic `<prefix>.<this>`.
    pub transaction_topic: String,
    /// `topic.delimiter` (`.`).
    pub topic_delimiter: String,
    /// `include.schema.changes` (MySQL/MariaDB; default true).
    pub include_schema_changes: bool,
    /// Column filters, masks, key columns and name adjustment.
    pub columns: super::columns::ColumnRules,
}

/// The connector properties the envelope, its column rules and the transforms act on
/// (names; an entry ending in `.` is a prefix), for the daemon's report of properties
/// that are accepted but not acted on.
pub const PROPERTIES: &[&str] = &[
    "topic.prefix",
    "topic.delimiter",
    "topic.heartbeat.prefix",
    "topic.transaction",
    "database.dbname",
    "decimal.handling.mode",
    "time.precision.mode",
    "binary.handling.mode",
    "interval.handling.mode",
    "include.schema.changes",
    "provide.transaction.metadata",
    "skipped.operations",
    "tombstones.on.delete",
    "unavailable.value.placeholder",
    "column.include.list",
    "column.exclude.list",
    "column.mask.hash.",
    "column.mask.with.",
    "column.truncate.to.",
    "message.key.columns",
    "schema.name.adjustment.mode",
    "field.name.adjustment.mode",
    "sanitize.field.names",
    "transforms",
    "transforms.",
    "predicates",
    "predicates.",
];

fn choice<T: Copy>(
    props: &BTreeMap<String, String>,
    property: &str,
    default: T,
    options: &[(&str, T)],
) -> Result<T, PropertyError> {
    let Some(value) = props.get(property) else {
        return Ok(default);
    };
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value.trim()))
        .map(|(_, v)| *v)
        .ok_or_else(|| PropertyError {
            property: property.into(),
            value: value.clone(),
            message: format!(
                "expected one of {}",
                options
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

fn boolean(
    props: &BTreeMap<String, String>,
    property: &str,
    default: bool,
) -> Result<bool, PropertyError> {
    choice(
        props,
        property,
        default,
        &[("true", true), ("false", false)],
    )
}

impl EnvelopeConfig {
    /// Reads and checks the envelope's properties. Pure: no I/O.
    pub fn from_properties(
        source: &'static dyn SourceBlock,
        props: &BTreeMap<String, String>,
    ) -> Result<Self, PropertyError> {
        let topic_prefix = props.get("topic.prefix").cloned().unwrap_or_default();
        if topic_prefix.is_empty()
            || !topic_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(PropertyError {
                property: "topic.prefix".into(),
                value: topic_prefix,
                message: "required; letters, digits, '.', '_' and '-' only".into(),
            });
        }
        let default_time = match source.default_time_precision() {
            "adaptive_time_microseconds" => TimePrecisionMode::AdaptiveTimeMicroseconds,
            "connect" => TimePrecisionMode::Connect,
            _ => TimePrecisionMode::Adaptive,
        };
        let skipped_operations = match props.get("skipped.operations") {
            None => vec![Operation::Truncate],
            Some(list) => {
                let mut ops = Vec::new();
                for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match item {
                        "none" => {}
                        "c" => ops.push(Operation::Create),
                        "u" => ops.push(Operation::Update),
                        "d" => ops.push(Operation::Delete),
                        "t" => ops.push(Operation::Truncate),
                        _ => {
                            return Err(PropertyError {
                                property: "skipped.operations".into(),
                                value: list.clone(),
                                message: "a comma-separated list of c, u, d, t, or none".into(),
                            });
                        }
                    }
                }
                ops
            }
        };
        Ok(Self {
            source,
            database: props.get("database.dbname").cloned().unwrap_or_default(),
            decimal_mode: choice(
                props,
                "decimal.handling.mode",
                DecimalHandlingMode::Precise,
                &[
                    ("precise", DecimalHandlingMode::Precise),
                    ("double", DecimalHandlingMode::Double),
                    ("string", DecimalHandlingMode::String),
                ],
            )?,
            time_mode: choice(
                props,
                "time.precision.mode",
                default_time,
                &[
                    ("adaptive", TimePrecisionMode::Adaptive),
                    (
                        "adaptive_time_microseconds",
                        TimePrecisionMode::AdaptiveTimeMicroseconds,
                    ),
                    ("connect", TimePrecisionMode::Connect),
                ],
            )?,
            binary_mode: choice(
                props,
                "binary.handling.mode",
                BinaryHandlingMode::Bytes,
                &[
                    ("bytes", BinaryHandlingMode::Bytes),
                    ("base64", BinaryHandlingMode::Base64),
                    ("base64-url-safe", BinaryHandlingMode::Base64UrlSafe),
                    ("hex", BinaryHandlingMode::Hex),
                ],
            )?,
            interval_mode: choice(
                props,
                "interval.handling.mode",
                IntervalHandlingMode::Numeric,
                &[
                    ("numeric", IntervalHandlingMode::Numeric),
                    ("string", IntervalHandlingMode::String),
                ],
            )?,
            tombstones_on_delete: boolean(props, "tombstones.on.delete", true)?,
            include_schema_changes: boolean(
                props,
                "include.schema.changes",
                source.schema_change_topic(),
            )?,
            provide_transaction_metadata: boolean(props, "provide.transaction.metadata", false)?,
            skipped_operations,
            unavailable_placeholder: props
                .get("unavailable.value.placeholder")
                .cloned()
                .unwrap_or_else(|| "__debezium_unavailable_value".into()),
            heartbeat_prefix: props
                .get("topic.heartbeat.prefix")
                .cloned()
                .unwrap_or_else(|| "__debezium-heartbeat".into()),
            transaction_topic: props
                .get("topic.transaction")
                .cloned()
                .unwrap_or_else(|| "transaction".into()),
            topic_delimiter: props
                .get("topic.delimiter")
                .cloned()
                .unwrap_or_else(|| ".".into()),
            columns: super::columns::ColumnRules::from_properties(props)?,
            topic_prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outflow_mysql::source_block::MYSQL_SOURCE_BLOCK;
    use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn defaults_follow_debezium() {
        let c = EnvelopeConfig::from_properties(
            &POSTGRES_SOURCE_BLOCK,
            &props(&[("topic.prefix", "srv")]),
        )
        .unwrap();
        assert_eq!(c.time_mode, TimePrecisionMode::Adaptive);
        assert_eq!(c.skipped_operations, vec![Operation::Truncate]);
        assert!(c.tombstones_on_delete);
        let m = EnvelopeConfig::from_properties(
            &MYSQL_SOURCE_BLOCK,
            &props(&[("topic.prefix", "srv")]),
        )
        .unwrap();
        assert_eq!(m.time_mode, TimePrecisionMode::AdaptiveTimeMicroseconds);
    }

    #[test]
    fn errors_name_the_property() {
        for (key, value) in [
            ("decimal.handling.mode", "exact"),
            ("tombstones.on.delete", "yes"),
            ("skipped.operations", "x"),
            ("topic.prefix", "has space"),
        ] {
            let mut p = props(&[("topic.prefix", "srv")]);
            p.insert(key.into(), value.into());
            let err = EnvelopeConfig::from_properties(&POSTGRES_SOURCE_BLOCK, &p).unwrap_err();
            assert_eq!(err.property, key);
        }
        let err = EnvelopeConfig::from_properties(&POSTGRES_SOURCE_BLOCK, &props(&[])).unwrap_err();
        assert_eq!(err.property, "topic.prefix");
    }
}
