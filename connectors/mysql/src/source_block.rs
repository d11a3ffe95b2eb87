//! Debezium's `io.debezium.connector.{mysql,mariadb}.Source` block.
//!
//! After the common fields: `db` (the table's database), `sequence` (always null),
//! `ts_us`, `ts_ns`, `table`, `server_id`, `gtid`, `file`, `pos`, `row`, `thread` and
//! `query` (with `include.query`), read from the event's binlog position and its
//! [`BinlogPlace`]. MySQL and MariaDB differ only in the `connector` name.

use outflow_core::source_block::{
    SourceBlock, SourceBlockInput, SourceField, SourceFieldKind, SourceValue, timestamps,
};

use crate::position::BinlogPlace;

/// The source block of the MySQL or the MariaDB connector.
#[derive(Debug)]
pub struct BinlogSourceBlock {
    connector: &'static str,
}

/// Debezium's MySQL connector's block.
pub static MYSQL_SOURCE_BLOCK: BinlogSourceBlock = BinlogSourceBlock { connector: "mysql" };

/// Debezium's MariaDB connector's block.
pub static MARIADB_SOURCE_BLOCK: BinlogSourceBlock = BinlogSourceBlock {
    connector: "mariadb",
};

static FIELDS: [SourceField; 12] = [
    SourceField::required("db", SourceFieldKind::String),
    SourceField::optional("sequence", SourceFieldKind::String),
    SourceField::optional("ts_us", SourceFieldKind::Int64),
    SourceField::optional("ts_ns", SourceFieldKind::Int64),
    SourceField::optional("table", SourceFieldKind::String),
    SourceField::required("server_id", SourceFieldKind::Int64),
    SourceField::optional("gtid", SourceFieldKind::String),
    SourceField::required("file", SourceFieldKind::String),
    SourceField::required("pos", SourceFieldKind::Int64),
    SourceField::required("row", SourceFieldKind::Int32),
    SourceField::optional("thread", SourceFieldKind::Int64),
    SourceField::optional("query", SourceFieldKind::String),
];

impl SourceBlock for BinlogSourceBlock {
    fn connector(&self) -> &'static str {
        self.connector
    }

    fn fields(&self) -> &'static [SourceField] {
        &FIELDS
    }

    fn values(&self, input: SourceBlockInput<'_>, out: &mut Vec<SourceValue>) {
        let position = &input.event.position;
        let place = position.detail::<BinlogPlace>();
        let [_, pos, _, _, row] = *position.order();
        out.extend([
            SourceValue::Text(input.namespace.clone()),
            SourceValue::Null,
        ]);
        out.extend(timestamps(input.event));
        out.extend([
            SourceValue::Text(input.table.clone()),
            SourceValue::Int64(place.map_or(0, |d| i64::from(d.server_id))),
            place
                .and_then(|d| d.gtid.clone())
                .map_or(SourceValue::Null, SourceValue::String),
            SourceValue::String(place.map(|d| d.file.clone()).unwrap_or_default()),
            SourceValue::Int64(i64::try_from(pos).unwrap_or(i64::MAX)),
            SourceValue::Int32(i32::try_from(row).unwrap_or(i32::MAX)),
            place.and_then(|d| d.thread).map_or(SourceValue::Null, |t| {
                SourceValue::Int64(i64::try_from(t).unwrap_or(i64::MAX))
            }),
            place
                .and_then(|d| d.query.clone())
                .map_or(SourceValue::Null, SourceValue::String),
        ]);
    }

    fn default_time_precision(&self) -> &'static str {
        "adaptive_time_microseconds"
    }

    fn schema_change_topic(&self) -> bool {
        true
    }
}
