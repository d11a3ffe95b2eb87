//! Relations seen in the stream and the table-schema versions they define.
//!
//! pgoutput sends a Relation message before the first change of a table in a session and
//! again whenever the table's shape changed. Each one is turned into a [`TableSchema`];
//! when its shape differs from the last version of that table, it becomes a new
//! [`SchemaVersion`], used from that change on. Rows are converted with the column types
//! of the relation they were sent with.

use std::collections::HashMap;
use std::sync::Arc;

use outflow_core::{ColumnSchema, Row, SchemaVersion, TableId, TableSchema, Value};

use crate::catalog::TableInfo;
use crate::pgoutput::{ColumnData, RelationColumn};
use crate::types::{PgType, ValueError, parse_text};

/// A relation and how to read its tuples.
#[derive(Debug, Clone)]
pub struct Relation {
    /// The schema version rows are decoded with.
    pub schema: Arc<TableSchema>,
    /// Type and modifier per column.
    pub types: Vec<(PgType, i32)>,
}

/// A tuple that does not fit its relation.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// A change for a relation never described.
    #[error("change for relation {0} before its Relation message")]
    UnknownRelation(u32),
    /// Column count mismatch.
    #[error("table {table}: tuple has {got} columns, relation has {expected}")]
    Shape {
        /// Table.
        table: TableId,
        /// Columns in the tuple.
        got: usize,
        /// Columns in the relation.
        expected: usize,
    },
    /// A value that does not parse.
    #[error("table {table}, column {column}: {source}")]
    Value {
        /// Table.
        table: TableId,
        /// Column.
        column: String,
        /// Why.
        #[source]
        source: ValueError,
    },
    /// A value in binary format (never requested).
    #[error("table {table}, column {column}: binary value in a text-format stream")]
    Binary {
        /// Table.
        table: TableId,
        /// Column.
        column: String,
    },
}

/// Relations by OID, and the latest schema version of each table.
#[derive(Debug, Default)]
pub struct RelationCache {
    relations: HashMap<u32, Relation>,
    latest: HashMap<TableId, Arc<TableSchema>>,
}

impl RelationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a Relation message; returns the schema and whether it is a new version.
    pub fn define(
        &mut self,
        relation_id: u32,
        namespace: &str,
        name: &str,
        columns: &[RelationColumn<'_>],
        types: Vec<(PgType, i32)>,
        info: &TableInfo,
    ) -> (Arc<TableSchema>, bool) {
        let id = TableId::new(namespace, name);
        let column_schemas: Vec<ColumnSchema> = columns
            .iter()
            .zip(&types)
            .map(|(c, (t, modifier))| {
                let mut column = ColumnSchema::new(
                    c.name,
                    t.data_type(*modifier),
                    !info.not_null.iter().any(|n| n == c.name),
                );
                column.source_type = format!("{t:?}");
                column
            })
            .collect();
        let key: Vec<&str> = info
            .primary_key
            .iter()
            .map(String::as_str)
            .filter(|k| column_schemas.iter().any(|c| c.name == *k))
            .collect();
        let key_indices: Vec<usize> = key
            .iter()
            .filter_map(|k| column_schemas.iter().position(|c| c.name == *k))
            .collect();
        let candidate = TableSchema {
            id: id.clone(),
            version: SchemaVersion::FIRST,
            columns: column_schemas,
            primary_key: key_indices,
        };
        let (schema, changed) = match self.latest.get(&id) {
            Some(previous) if !candidate.shape_differs(previous) => (Arc::clone(previous), false),
            Some(previous) => {
                let schema = Arc::new(TableSchema {
                    version: previous.version.next(),
                    ..candidate
                });
                (schema, true)
            }
            None => (Arc::new(candidate), true),
        };
        self.latest.insert(id, Arc::clone(&schema));
        self.relations.insert(
            relation_id,
            Relation {
                schema: Arc::clone(&schema),
                types,
            },
        );
        (schema, changed)
    }

    /// The relation with this OID.
    pub fn get(&self, relation_id: u32) -> Result<&Relation, RowError> {
        self.relations
            .get(&relation_id)
            .ok_or(RowError::UnknownRelation(relation_id))
    }

    /// Converts a tuple of `relation_id` into a row.
    pub fn row(
        &self,
        relation_id: u32,
        tuple: &[ColumnData<'_>],
    ) -> Result<(Arc<TableSchema>, Row), RowError> {
        let relation = self.get(relation_id)?;
        Ok((Arc::clone(&relation.schema), relation.row(tuple)?))
    }
}

impl Relation {
    /// Converts a tuple of this relation into a row.
    pub fn row(&self, tuple: &[ColumnData<'_>]) -> Result<Row, RowError> {
        let table = &self.schema;
        if tuple.len() != self.types.len() {
            return Err(RowError::Shape {
                table: table.id.clone(),
                got: tuple.len(),
                expected: self.types.len(),
            });
        }
        let mut row = Vec::with_capacity(tuple.len());
        for ((data, (t, modifier)), column) in tuple.iter().zip(&self.types).zip(&table.columns) {
            row.push(match data {
                ColumnData::Null => Value::Null,
                ColumnData::UnchangedToast => Value::Unavailable,
                ColumnData::Text(text) => {
                    parse_text(t, *modifier, text).map_err(|source| RowError::Value {
                        table: table.id.clone(),
                        column: column.name.clone(),
                        source,
                    })?
                }
                ColumnData::Binary(_) => {
                    return Err(RowError::Binary {
                        table: table.id.clone(),
                        column: column.name.clone(),
                    });
                }
            });
        }
        Ok(row)
    }
}
