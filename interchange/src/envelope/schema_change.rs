//! MySQL/MariaDB schema-change records on the `<topic.prefix>` topic
//! (`include.schema.changes`, default true): key `io.debezium.connector.<c>.SchemaChangeKey`
//! `{databaseName}`, value `…SchemaChangeValue` `{source, ts_ms, databaseName, schemaName,
//! ddl, tableChanges}` with Debezium's `io.debezium.connector.schema.Change` / `Table` /
//! `Column` structs. Column `jdbcType`s are `java.sql.Types` codes.

use std::sync::Arc;

use crate::connect::{ConnectSchema, Datum, Field, SchemaKind};
use outflow_core::event::{SchemaChange, SchemaChangeKind};
use outflow_core::schema::{ColumnSchema, DataType};

fn req(kind: SchemaKind) -> ConnectSchema {
    ConnectSchema::new(kind)
}

fn opt(kind: SchemaKind) -> ConnectSchema {
    ConnectSchema::new(kind).optional()
}

fn strings() -> SchemaKind {
    SchemaKind::Array(Arc::new(req(SchemaKind::String)))
}

/// Key and value schemas of the schema-change topic.
#[derive(Debug)]
pub(crate) struct SchemaChangeSchemas {
    pub(crate) key: Arc<ConnectSchema>,
    pub(crate) value: Arc<ConnectSchema>,
}

impl SchemaChangeSchemas {
    pub(crate) fn new(connector: &str, source: &Arc<ConnectSchema>) -> Self {
        let column = ConnectSchema::record(
            "io.debezium.connector.schema.Column",
            vec![
                Field::new("name", req(SchemaKind::String)),
                Field::new("jdbcType", req(SchemaKind::Int32)),
                Field::new("nativeType", opt(SchemaKind::Int32)),
                Field::new("typeName", req(SchemaKind::String)),
                Field::new("typeExpression", opt(SchemaKind::String)),
                Field::new("charsetName", opt(SchemaKind::String)),
                Field::new("length", opt(SchemaKind::Int32)),
                Field::new("scale", opt(SchemaKind::Int32)),
                Field::new("position", req(SchemaKind::Int32)),
                Field::new("optional", opt(SchemaKind::Boolean)),
                Field::new("autoIncremented", opt(SchemaKind::Boolean)),
                Field::new("generated", opt(SchemaKind::Boolean)),
                Field::new("comment", opt(SchemaKind::String)),
                Field::new("defaultValueExpression", opt(SchemaKind::String)),
                Field::new("enumValues", opt(strings())),
            ],
        )
        .versioned(1);
        let table = ConnectSchema::record(
            "io.debezium.connector.schema.Table",
            vec![
                Field::new("defaultCharsetName", opt(SchemaKind::String)),
                Field::new("primaryKeyColumnNames", opt(strings())),
                Field::new("columns", req(SchemaKind::Array(Arc::new(column)))),
                Field::new("comment", opt(SchemaKind::String)),
            ],
        )
        .versioned(1)
        .optional();
        let change = ConnectSchema::record(
            "io.debezium.connector.schema.Change",
            vec![
                Field::new("type", req(SchemaKind::String)),
                Field::new("id", req(SchemaKind::String)),
                Field::new("table", table),
            ],
        )
        .versioned(1);
        Self {
            key: Arc::new(
                ConnectSchema::record(
                    format!("io.debezium.connector.{connector}.SchemaChangeKey"),
                    vec![Field::new("databaseName", req(SchemaKind::String))],
                )
                .versioned(1),
            ),
            value: Arc::new(
                ConnectSchema::record(
                    format!("io.debezium.connector.{connector}.SchemaChangeValue"),
                    vec![
                        Field::new("source", Arc::clone(source)),
                        Field::new("ts_ms", req(SchemaKind::Int64)),
                        Field::new("databaseName", opt(SchemaKind::String)),
                        Field::new("schemaName", opt(SchemaKind::String)),
                        Field::new("ddl", opt(SchemaKind::String)),
                        Field::new("tableChanges", req(SchemaKind::Array(Arc::new(change)))),
                    ],
                )
                .versioned(1),
            ),
        }
    }
}

/// A column's type as Debezium's MySQL DDL parser names it: the source type without its
/// parenthesised width, length or labels, with ` UNSIGNED` kept (`INT UNSIGNED`,
/// `VARCHAR`, `ENUM`).
fn type_name(column: &ColumnSchema) -> String {
    if column.source_type.is_empty() {
        return format!("{:?}", column.data_type);
    }
    let upper = column.source_type.to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or_default().trim();
    if upper.contains("UNSIGNED") && !base.ends_with("UNSIGNED") {
        format!("{base} UNSIGNED")
    } else {
        base.to_owned()
    }
}

/// `java.sql.Types` code, length and scale Debezium reports for a column.
fn jdbc(column: &ColumnSchema) -> (i32, Option<i32>, Option<i32>) {
    let int = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
    let upper = column.source_type.to_ascii_uppercase();
    let base = upper.split(['(', ' ']).next().unwrap_or_default();
    // An integer's display width, `INT(11)`, is its length to Debezium.
    let width = upper
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(width, _)| width.trim().parse::<i32>().ok());
    // ENUM: its longest label; SET: all labels with their commas.
    let labels_length = |labels: &[String], set: bool| {
        let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let all = labels.iter().map(|l| l.chars().count()).sum::<usize>()
            + labels.len().saturating_sub(1);
        i32::try_from(if set { all } else { longest }).ok()
    };
    match (&column.data_type, base) {
        (_, "TINYINT" | "SMALLINT") => (5, width, None),
        (_, "MEDIUMINT" | "INT" | "INTEGER") => (4, width, None),
        (_, "BIGINT") => (-5, width, None),
        (_, "FLOAT") => (6, None, None),
        (DataType::Bool, _) => (16, None, None),
        (DataType::Int16, _) => (5, width, None),
        (DataType::Int32 | DataType::Year, _) => (4, width, None),
        (DataType::Int64, _) => (-5, width, None),
        (DataType::Float32, _) => (7, None, None),
        (DataType::Float64, _) => (8, None, None),
        (DataType::Decimal { precision, scale }, _) => (3, int(*precision), int(*scale)),
        (DataType::String { .. }, _) if base.ends_with("TEXT") => (12, None, None),
        (DataType::String { length }, "CHAR") => (1, int(*length), None),
        (DataType::String { length }, _) => (12, int(*length), None),
        (DataType::Bytes { .. }, _) if base.ends_with("BLOB") => (2004, None, None),
        (DataType::Bytes { length }, "BINARY") => (-2, int(*length), None),
        (DataType::Bytes { length }, _) => (-3, int(*length), None),
        (DataType::Date, _) => (91, None, None),
        (DataType::Time { precision }, _) => (92, precision.map(i32::from), None),
        (DataType::TimeTz { precision }, _) => (2013, precision.map(i32::from), None),
        (DataType::Timestamp { precision }, _) => (93, precision.map(i32::from), None),
        (DataType::TimestampTz { precision }, _) => (2014, precision.map(i32::from), None),
        (DataType::Enum { labels }, _) => (1, labels_length(labels, false), None),
        (DataType::Set { labels }, _) => (1, labels_length(labels, true), None),
        (DataType::Bits { length }, _) => (-7, int(Some(*length)), None),
        (DataType::Array(_), _) => (2003, None, None),
        (DataType::Xml, _) => (2009, None, None),
        (
            DataType::Interval
            | DataType::Uuid
            | DataType::Json
            | DataType::Ltree
            | DataType::Tsvector
            | DataType::StringMap
            | DataType::Geometry { .. }
            | DataType::Point,
            _,
        ) => (1111, None, None),
    }
}

/// A constant default as Debezium's `defaultValueExpression` spells it (`7`, `abc`).
fn default_expression(column: &ColumnSchema) -> Datum {
    use outflow_core::Value;
    match column.default.as_ref() {
        Some(Value::Int16(v)) => Datum::String(v.to_string()),
        Some(Value::Int32(v)) => Datum::String(v.to_string()),
        Some(Value::Int64(v)) => Datum::String(v.to_string()),
        Some(Value::Decimal(v)) => Datum::String(v.to_string()),
        Some(Value::String(v) | Value::Enum(v)) => Datum::String(v.clone()),
        _ => Datum::Null,
    }
}

/// An optional STRING datum.
pub(crate) fn optional_text(value: Option<&str>) -> Datum {
    value.map_or(Datum::Null, |v| Datum::String(v.to_owned()))
}

/// The `tableChanges` array of one change.
pub(crate) fn table_changes(change: &SchemaChange) -> Datum {
    if change.kind == SchemaChangeKind::Drop {
        return Datum::Array(Vec::new());
    }
    let table = &change.table;
    let columns = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (jdbc_type, length, scale) = jdbc(c);
            // Labels as the DDL quotes them, `'a'`.
            let labels = match &c.data_type {
                DataType::Enum { labels } | DataType::Set { labels } => Datum::Array(
                    labels
                        .iter()
                        .map(|l| Datum::String(format!("'{}'", l.replace('\'', "''"))))
                        .collect(),
                ),
                _ => Datum::Null,
            };
            let type_name = type_name(c);
            Datum::Struct(vec![
                Datum::String(c.name.clone()),
                Datum::Int32(jdbc_type),
                Datum::Null,
                Datum::String(type_name.clone()),
                Datum::String(type_name),
                Datum::Null,
                length.map_or(Datum::Null, Datum::Int32),
                scale.map_or(Datum::Null, Datum::Int32),
                Datum::Int32(i32::try_from(i + 1).unwrap_or(i32::MAX)),
                Datum::Boolean(c.nullable),
                Datum::Boolean(false),
                Datum::Boolean(false),
                c.comment.clone().map_or(Datum::Null, Datum::String),
                default_expression(c),
                labels,
            ])
        })
        .collect();
    let key = Datum::Array(
        table
            .key_columns()
            .map(|c| Datum::String(c.name.clone()))
            .collect(),
    );
    let table_struct = Datum::Struct(vec![Datum::Null, key, Datum::Array(columns), Datum::Null]);
    Datum::Array(vec![Datum::Struct(vec![
        Datum::String(change.kind.as_debezium().into()),
        Datum::String(format!("\"{}\".\"{}\"", table.id.namespace, table.id.table)),
        table_struct,
    ])])
}
