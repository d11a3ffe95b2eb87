//! Catalog lookups over an ordinary (tokio-postgres) connection: types that are not
//! built in (enums, domains, extension types, their arrays), primary keys and
//! nullability of captured tables. Types are cached by OID for the life of the source.

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::config::HstoreHandling;
use crate::types::{PgType, builtin};

/// Primary key and nullability of a table, from the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableInfo {
    /// Primary-key column names in key order (empty: no primary key).
    pub primary_key: Vec<String>,
    /// Columns declared NOT NULL.
    pub not_null: Vec<String>,
}

/// Catalog access with a type cache.
#[derive(Debug)]
pub struct Catalog {
    client: Client,
    types: HashMap<u32, PgType>,
    hstore: HstoreHandling,
}

impl Catalog {
    /// Wraps a connected client; `hstore` values resolve as JSON text.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            types: HashMap::new(),
            hstore: HstoreHandling::Json,
        }
    }

    /// Resolves `hstore` as `hstore.handling.mode` says.
    #[must_use]
    pub fn with_hstore(mut self, hstore: HstoreHandling) -> Self {
        self.hstore = hstore;
        self
    }

    /// The client, for other queries.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client, without the type cache.
    pub fn into_client(self) -> Client {
        self.client
    }

    /// Resolves a type OID: built-ins directly, others from `pg_type` (domains to their
    /// base type, enums with their labels, arrays with their element type).
    pub async fn resolve_type(&mut self, oid: u32) -> Result<PgType, tokio_postgres::Error> {
        if let Some(t) = builtin(oid) {
            return Ok(t);
        }
        if let Some(t) = self.types.get(&oid) {
            return Ok(t.clone());
        }
        let mut current = oid;
        // Domains over domains: follow a bounded chain.
        let mut resolved = None;
        for _ in 0..8 {
            if let Some(t) = builtin(current) {
                resolved = Some(t);
                break;
            }
            let row = self
                .client
                .query_opt(
                    "SELECT t.typname::text, t.typtype::text, t.typbasetype, t.typelem, t.typcategory::text, \
                     ARRAY(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = t.oid ORDER BY enumsortorder) \
                     FROM pg_type t WHERE t.oid = $1",
                    &[&current],
                )
                .await?;
            let Some(row) = row else {
                resolved = Some(PgType::AsText(format!("oid {current}")));
                break;
            };
            let (name, kind, base, element, category): (String, String, u32, u32, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            let labels: Vec<String> = row.get(5);
            resolved = Some(match (kind.as_str(), category.as_str()) {
                ("d", _) => {
                    current = base;
                    continue;
                }
                ("e", _) => PgType::Enum(labels),
                (_, "A") if element != 0 => {
                    let element = Box::pin(self.resolve_type(element)).await?;
                    PgType::Array(Box::new(element))
                }
                _ => match name.as_str() {
                    "citext" => PgType::Text,
                    "ltree" => PgType::Ltree,
                    "hstore" => match self.hstore {
                        HstoreHandling::Json => PgType::Hstore,
                        HstoreHandling::Map => PgType::HstoreMap,
                    },
                    _ => {
                        tracing::warn!(type_name = %name, oid = current, "unmapped type; values are passed as text");
                        PgType::AsText(name)
                    }
                },
            });
            break;
        }
        let resolved = resolved.unwrap_or_else(|| PgType::AsText(format!("oid {oid}")));
        self.types.insert(oid, resolved.clone());
        Ok(resolved)
    }

    /// Primary key and NOT NULL columns of a relation.
    pub async fn table_info(&self, relation_id: u32) -> Result<TableInfo, tokio_postgres::Error> {
        let key = self
            .client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1 AND i.indisprimary \
                 ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[&relation_id],
            )
            .await?;
        let not_null = self
            .client
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attnotnull",
                &[&relation_id],
            )
            .await?;
        Ok(TableInfo {
            primary_key: key.iter().map(|r| r.get(0)).collect(),
            not_null: not_null.iter().map(|r| r.get(0)).collect(),
        })
    }
}
