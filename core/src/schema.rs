//! Table schemas and their versions.
//!
//! A [`TableSchema`] describes one captured table as the source saw it at one point in
//! its history: the columns in ordinal order with their logical [`DataType`], the
//! primary-key columns, and a [`SchemaVersion`] that grows by one every time the table's
//! shape changes. Row events hold an `Arc<TableSchema>` of the version they were decoded
//! with, so a consumer never has to guess which columns a row's values belong to, and
//! encoders can cache generated Avro schemas per `(table, version)`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::value::Value;

/// Identifies a table: `schema.table` on Postgres, `database.table` on MySQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    /// Postgres schema or MySQL database.
    pub namespace: String,
    /// Table name.
    pub table: String,
}

impl TableId {
    /// Builds a table id from its namespace (schema or database) and name.
    pub fn new(namespace: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.table)
    }
}

/// Version of a table's schema; starts at 1 and grows by one per change of shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SchemaVersion(pub u64);

impl SchemaVersion {
    /// The first version of every table.
    pub const FIRST: Self = Self(1);

    /// The version after this one.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// Logical type of a column, independent of the source database.
///
/// Each variant corresponds to the [`crate::Value`] variant a non-null value of the column
/// takes; the parameters are what the encoders need to produce Debezium's schemas
/// (precision and scale of decimals, fractional-second precision of temporals, the labels
/// of enums).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// Boolean.
    Bool,
    /// 16-bit integer.
    Int16,
    /// 32-bit integer.
    Int32,
    /// 64-bit integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Exact decimal; `None` precision/scale means variable (Postgres bare `numeric`).
    Decimal {
        /// Total digits, if declared.
        precision: Option<u32>,
        /// Digits after the point, if declared.
        scale: Option<u32>,
    },
    /// Character data; `length` is the declared maximum, if any.
    String {
        /// Declared maximum length in characters.
        length: Option<u32>,
    },
    /// Binary data.
    Bytes {
        /// Declared maximum length in bytes.
        length: Option<u32>,
    },
    /// Calendar date.
    Date,
    /// Time of day; `precision` is the fractional-second digits (0..=6).
    Time {
        /// Fractional-second digits.
        precision: Option<u8>,
    },
    /// Time of day with zone.
    TimeTz {
        /// Fractional-second digits.
        precision: Option<u8>,
    },
    /// Timestamp without zone.
    Timestamp {
        /// Fractional-second digits.
        precision: Option<u8>,
    },
    /// Timestamp with zone (an instant).
    TimestampTz {
        /// Fractional-second digits.
        precision: Option<u8>,
    },
    /// Interval.
    Interval,
    /// UUID.
    Uuid,
    /// JSON document.
    Json,
    /// Enumeration with its labels in declaration order.
    Enum {
        /// The allowed labels.
        labels: Vec<String>,
    },
    /// Array of an element type.
    Array(Box<DataType>),
    /// A bit string of more than one bit (`bit(n)`, `bit varying`, MySQL `BIT(n)`); values
    /// are [`crate::Value::Bytes`], least significant byte first as Debezium writes them.
    Bits {
        /// Declared length in bits.
        length: u32,
    },
    /// MySQL `YEAR`; values are [`crate::Value::Int32`].
    Year,
    /// MySQL `SET`; values are [`crate::Value::String`] (comma-separated members).
    Set {
        /// The allowed members.
        labels: Vec<String>,
    },
    /// Postgres `xml`; values are [`crate::Value::String`].
    Xml,
    /// Postgres `ltree`; values are [`crate::Value::String`].
    Ltree,
    /// Postgres `tsvector`; values are [`crate::Value::String`] (its text form).
    Tsvector,
    /// A map from text keys to optional text values (Postgres `hstore` under
    /// `hstore.handling.mode=map`); values are [`crate::Value::StringMap`].
    StringMap,
    /// Spatial data (PostGIS geometry/geography, MySQL GEOMETRY family); values are
    /// [`crate::Value::Geometry`].
    Geometry {
        /// Geography (PostGIS) rather than geometry.
        geography: bool,
    },
    /// A point; values are [`crate::Value::Geometry`] with the coordinates.
    Point,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// Column name as the database spells it.
    pub name: String,
    /// Logical type.
    pub data_type: DataType,
    /// The source's own type name (`int4`, `varchar`, `TINYINT UNSIGNED`), for
    /// `column.propagate.source.type` and diagnostics.
    pub source_type: String,
    /// Whether the column admits NULL.
    pub nullable: bool,
    /// The column's default value, when the database declares a constant one (becomes
    /// the Connect schema default, as Debezium reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The column's comment, where the connector reports it as Debezium does (the
    /// Connect field's `doc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl ColumnSchema {
    /// A column with the given name and type; `source_type` defaults to empty.
    pub fn new(name: impl Into<String>, data_type: DataType, nullable: bool) -> Self {
        Self {
            name: name.into(),
            data_type,
            source_type: String::new(),
            nullable,
            default: None,
            comment: None,
        }
    }
}

/// The shape of one table at one version.
///
/// Invariant: every index in `primary_key` is a valid index into `columns`; rows decoded
/// with this schema have exactly `columns.len()` values, in column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Which table.
    pub id: TableId,
    /// Which version of its shape.
    pub version: SchemaVersion,
    /// Columns in ordinal order.
    pub columns: Vec<ColumnSchema>,
    /// Indices into `columns` of the primary-key (or replica-identity) columns, in key
    /// order; empty for a table without a key.
    pub primary_key: Vec<usize>,
}

/// Error building a [`TableSchema`] whose key names a column it does not have.
#[derive(Debug, thiserror::Error)]
#[error("table {table}: key column {column:?} is not a column of the table")]
pub struct UnknownKeyColumn {
    /// The table.
    pub table: TableId,
    /// The key column that was not found.
    pub column: String,
}

impl TableSchema {
    /// Builds a schema, resolving key column names to indices.
    pub fn new(
        id: TableId,
        version: SchemaVersion,
        columns: Vec<ColumnSchema>,
        key_columns: &[&str],
    ) -> Result<Self, UnknownKeyColumn> {
        let primary_key = key_columns
            .iter()
            .map(|name| {
                columns
                    .iter()
                    .position(|c| c.name == *name)
                    .ok_or_else(|| UnknownKeyColumn {
                        table: id.clone(),
                        column: (*name).to_owned(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            id,
            version,
            columns,
            primary_key,
        })
    }

    /// Index of the column with this name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The key columns, in key order.
    pub fn key_columns(&self) -> impl Iterator<Item = &ColumnSchema> {
        self.primary_key.iter().filter_map(|&i| self.columns.get(i))
    }

    /// True when the shape (columns, key) differs from `other`, i.e. when replacing
    /// `other` by `self` needs a new [`SchemaVersion`].
    pub fn shape_differs(&self, other: &Self) -> bool {
        self.columns != other.columns || self.primary_key != other.primary_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<ColumnSchema> {
        vec![
            ColumnSchema::new("id", DataType::Int32, false),
            ColumnSchema::new("name", DataType::String { length: None }, true),
        ]
    }

    #[test]
    fn resolves_key_columns() {
        let t = TableSchema::new(
            TableId::new("public", "t"),
            SchemaVersion::FIRST,
            columns(),
            &["id"],
        )
        .unwrap();
        assert_eq!(t.primary_key, vec![0]);
        assert_eq!(
            t.key_columns().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["id"]
        );
        let err = TableSchema::new(
            TableId::new("public", "t"),
            SchemaVersion::FIRST,
            columns(),
            &["x"],
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"x\""));
    }

    #[test]
    fn versions_grow_and_shape_changes_are_seen() {
        let v1 = TableSchema::new(
            TableId::new("s", "t"),
            SchemaVersion::FIRST,
            columns(),
            &["id"],
        )
        .unwrap();
        let mut v2 = v1.clone();
        v2.version = v1.version.next();
        assert!(v2.version > v1.version);
        assert!(!v2.shape_differs(&v1));
        v2.columns
            .push(ColumnSchema::new("extra", DataType::Bool, true));
        assert!(v2.shape_differs(&v1));
    }
}
