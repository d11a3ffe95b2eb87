//! Column-level rules from the connector config, applied while formatting:
//! `column.include.list` / `column.exclude.list`, `column.mask.with.<N>.chars`,
//! `column.mask.hash.<algorithm>.with.salt.<salt>`, `column.truncate.to.<N>.chars`,
//! `message.key.columns`, and name adjustment (`schema.name.adjustment.mode`,
//! `field.name.adjustment.mode`, legacy `sanitize.field.names`).
//!
//! Column patterns are regular expressions matched against the whole fully-qualified
//! column name (`<schema|database>.<table>.<column>`), as Debezium matches them. Rules are
//! resolved once per table version into a [`TablePlan`]; formatting a row only follows
//! the plan.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use regex::Regex;

use outflow_core::schema::{DataType, TableSchema};

use super::config::{NameFilter, PropertyError};

/// Digest of `column.mask.hash.<algorithm>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

/// What happens to a string column's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnTransform {
    /// Replaced by this many `*`.
    Mask(usize),
    /// Replaced by the hex digest of the salt and the value.
    Hash {
        /// The digest.
        algorithm: HashAlgorithm,
        /// The salt.
        salt: String,
        /// Debezium's default (V1) hashing strategy, `column.mask.hash.<algorithm>…`: the
        /// digest is of the salt and the value as Java serialises a `String` object
        /// ([`java_serialized`]); `column.mask.hash.v2.<algorithm>…` (V2) digests the
        /// value's UTF-8 bytes.
        java_serialized: bool,
    },
    /// Cut to at most this many characters.
    Truncate(usize),
}

impl ColumnTransform {
    /// Applies the transform to a string value.
    pub fn apply(&self, value: &str) -> String {
        match self {
            Self::Mask(n) => "*".repeat(*n),
            Self::Truncate(n) => value.chars().take(*n).collect(),
            Self::Hash {
                algorithm,
                salt,
                java_serialized,
            } => {
                use sha2::Digest as _;
                let serialized;
                let bytes = if *java_serialized {
                    serialized = java_serialized_string(value);
                    serialized.as_slice()
                } else {
                    value.as_bytes()
                };
                let digest: Vec<u8> = match algorithm {
                    HashAlgorithm::Md5 => md5::Md5::new()
                        .chain_update(salt)
                        .chain_update(bytes)
                        .finalize()
                        .to_vec(),
                    HashAlgorithm::Sha1 => sha1::Sha1::new()
                        .chain_update(salt)
                        .chain_update(bytes)
                        .finalize()
                        .to_vec(),
                    HashAlgorithm::Sha256 => sha2::Sha256::new()
                        .chain_update(salt)
                        .chain_update(bytes)
                        .finalize()
                        .to_vec(),
                    HashAlgorithm::Sha512 => sha2::Sha512::new()
                        .chain_update(salt)
                        .chain_update(bytes)
                        .finalize()
                        .to_vec(),
                };
                let mut text = String::with_capacity(digest.len() * 2);
                for b in digest {
                    let _ = write!(text, "{b:02x}");
                }
                text
            }
        }
    }
}

/// `value` as Java's `ObjectOutputStream` writes a `String` object: the stream header
/// (`AC ED 00 05`), `TC_STRING` (`74`) and a 2-byte length, or `TC_LONGSTRING` (`7C`) and
/// an 8-byte length past 65,535 bytes, then the text in Java's modified UTF-8 (NUL as
/// `C0 80`, characters outside the Basic Multilingual Plane as two 3-byte surrogates).
/// What Debezium's default hashing strategy digests (observed from Debezium 3.6 by the
/// differential test).
fn java_serialized_string(value: &str) -> Vec<u8> {
    let mut text = Vec::with_capacity(value.len() + 8);
    for unit in value.encode_utf16() {
        match unit {
            0x0001..=0x007F => text.push(unit as u8),
            0x0000 | 0x0080..=0x07FF => {
                text.push(0xC0 | (unit >> 6) as u8);
                text.push(0x80 | (unit & 0x3F) as u8);
            }
            _ => {
                text.push(0xE0 | (unit >> 12) as u8);
                text.push(0x80 | ((unit >> 6) & 0x3F) as u8);
                text.push(0x80 | (unit & 0x3F) as u8);
            }
        }
    }
    let mut out = vec![0xAC, 0xED, 0x00, 0x05];
    match u16::try_from(text.len()) {
        Ok(short) => {
            out.push(0x74);
            out.extend_from_slice(&short.to_be_bytes());
        }
        Err(_) => {
            out.push(0x7C);
            out.extend_from_slice(&(text.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&text);
    out
}

/// How schema and field names are adjusted for Avro.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameAdjustment {
    /// Names as they are.
    #[default]
    None,
    /// Characters not valid in Avro names become `_`.
    Avro,
    /// Characters not valid in Avro names become `_uxxxx`.
    AvroUnicode,
}

impl NameAdjustment {
    /// Adjusts one name segment (no dots).
    pub fn adjust(self, name: &str) -> String {
        if self == Self::None {
            return name.to_owned();
        }
        let mut out = String::with_capacity(name.len());
        for (i, c) in name.chars().enumerate() {
            let valid = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
            if valid {
                out.push(c);
            } else if self == Self::Avro {
                out.push('_');
            } else {
                let _ = write!(out, "_u{:04x}", c as u32);
            }
        }
        if out.is_empty() {
            out.push('_');
        }
        out
    }

    /// Adjusts a dotted full name segment by segment.
    pub fn adjust_full(self, name: &str) -> String {
        if self == Self::None {
            return name.to_owned();
        }
        name.split('.')
            .map(|s| self.adjust(s))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The column rules of a connector.
#[derive(Debug, Clone, Default)]
pub struct ColumnRules {
    columns: NameFilter,
    transforms: Vec<(Vec<Regex>, ColumnTransform)>,
    key_columns: Vec<(Regex, Vec<String>)>,
    /// Adjustment of record names.
    pub schema_names: NameAdjustment,
    /// Adjustment of field names.
    pub field_names: NameAdjustment,
}

impl PartialEq for ColumnRules {
    fn eq(&self, other: &Self) -> bool {
        self.columns.patterns() == other.columns.patterns()
            && self.transforms.len() == other.transforms.len()
            && self.schema_names == other.schema_names
            && self.field_names == other.field_names
    }
}

impl Eq for ColumnRules {}

use super::config::regex_list as patterns;

fn adjustment(
    props: &BTreeMap<String, String>,
    property: &str,
    legacy: bool,
) -> Result<NameAdjustment, PropertyError> {
    match props.get(property).map(String::as_str) {
        None if legacy => Ok(NameAdjustment::Avro),
        None | Some("none") => Ok(NameAdjustment::None),
        Some("avro") => Ok(NameAdjustment::Avro),
        Some("avro_unicode") => Ok(NameAdjustment::AvroUnicode),
        Some(other) => Err(PropertyError::new(
            property,
            other,
            "expected none, avro or avro_unicode",
        )),
    }
}

impl ColumnRules {
    /// Reads the column properties. Pure: no I/O.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, PropertyError> {
        let columns = NameFilter::from_properties(props, "column")?;
        let mut transforms = Vec::new();
        for (key, value) in props {
            let transform = if let Some(rest) = key.strip_prefix("column.mask.with.") {
                let n = rest.strip_suffix(".chars").and_then(|n| n.parse().ok());
                let n = n.ok_or_else(|| {
                    PropertyError::new(
                        key,
                        value,
                        "the property name must be column.mask.with.<N>.chars",
                    )
                })?;
                ColumnTransform::Mask(n)
            } else if let Some(rest) = key.strip_prefix("column.truncate.to.") {
                let n = rest.strip_suffix(".chars").and_then(|n| n.parse().ok());
                let n = n.ok_or_else(|| {
                    PropertyError::new(
                        key,
                        value,
                        "the property name must be column.truncate.to.<N>.chars",
                    )
                })?;
                ColumnTransform::Truncate(n)
            } else if let Some(rest) = key.strip_prefix("column.mask.hash.") {
                let v2 = rest.strip_prefix("v2.");
                let java_serialized = v2.is_none();
                let rest = v2.unwrap_or(rest);
                let (algorithm, salt) = rest.split_once(".with.salt.").ok_or_else(|| {
                    PropertyError::new(
                        key,
                        value,
                        "the property name must be column.mask.hash.<algorithm>.with.salt.<salt>",
                    )
                })?;
                let algorithm = match algorithm.to_ascii_uppercase().replace('-', "").as_str() {
                    "MD5" => HashAlgorithm::Md5,
                    "SHA1" => HashAlgorithm::Sha1,
                    "SHA256" => HashAlgorithm::Sha256,
                    "SHA512" => HashAlgorithm::Sha512,
                    _ => {
                        return Err(PropertyError::new(
                            key,
                            value,
                            format!(
                                "unsupported hash algorithm {algorithm:?}: MD5, SHA-1, SHA-256 or SHA-512"
                            ),
                        ));
                    }
                };
                ColumnTransform::Hash {
                    algorithm,
                    salt: salt.to_owned(),
                    java_serialized,
                }
            } else {
                continue;
            };
            transforms.push((patterns(key, value)?, transform));
        }
        let mut key_columns = Vec::new();
        if let Some(spec) = props.get("message.key.columns") {
            for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
                let (table, columns) = entry.rsplit_once(':').ok_or_else(|| {
                    PropertyError::new(
                        "message.key.columns",
                        spec,
                        "expected <table regex>:<column>,<column>;...",
                    )
                })?;
                let table = Regex::new(&format!("^(?:{})$", table.trim())).map_err(|e| {
                    PropertyError::new(
                        "message.key.columns",
                        spec,
                        format!("invalid table pattern: {e}"),
                    )
                })?;
                let columns: Vec<String> = columns
                    .split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect();
                if columns.is_empty() {
                    return Err(PropertyError::new(
                        "message.key.columns",
                        spec,
                        "no columns after ':'",
                    ));
                }
                key_columns.push((table, columns));
            }
        }
        let legacy = props
            .get("sanitize.field.names")
            .is_some_and(|v| v == "true");
        Ok(Self {
            columns,
            transforms,
            key_columns,
            schema_names: adjustment(props, "schema.name.adjustment.mode", legacy)?,
            field_names: adjustment(props, "field.name.adjustment.mode", legacy)?,
        })
    }

    /// Resolves the rules for one table version.
    pub fn plan(&self, table: &TableSchema) -> TablePlan {
        let qualified =
            |column: &str| format!("{}.{}.{column}", table.id.namespace, table.id.table);
        let mut columns = Vec::with_capacity(table.columns.len());
        for (index, column) in table.columns.iter().enumerate() {
            let name = qualified(&column.name);
            if !self.columns.matches(&name) {
                continue;
            }
            let is_text = matches!(column.data_type, DataType::String { .. });
            let transform = self
                .transforms
                .iter()
                .find(|(patterns, _)| is_text && patterns.iter().any(|r| r.is_match(&name)))
                .map(|(_, t)| t.clone());
            columns.push(PlannedColumn { index, transform });
        }
        let table_name = table.id.to_string();
        let key = match self
            .key_columns
            .iter()
            .find(|(pattern, _)| pattern.is_match(&table_name))
        {
            Some((_, names)) => names.iter().filter_map(|n| table.column_index(n)).collect(),
            None => table.primary_key.clone(),
        };
        TablePlan { columns, key }
    }
}

/// One column of the value record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedColumn {
    /// Index in the table's columns (and rows).
    pub index: usize,
    /// What happens to its values.
    pub transform: Option<ColumnTransform>,
}

/// The columns of one table version as the records carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    /// Value columns in order.
    pub columns: Vec<PlannedColumn>,
    /// Key column indices (primary key or `message.key.columns`).
    pub key: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use outflow_core::schema::{ColumnSchema, SchemaVersion, TableId};

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn table() -> TableSchema {
        let text = DataType::String { length: None };
        TableSchema::new(
            TableId::new("public", "users"),
            SchemaVersion::FIRST,
            vec![
                ColumnSchema::new("id", DataType::Int32, false),
                ColumnSchema::new("email", text.clone(), true),
                ColumnSchema::new("ssn", text.clone(), true),
                ColumnSchema::new("bio", text, true),
            ],
            &["id"],
        )
        .unwrap()
    }

    #[test]
    fn include_exclude_and_transforms() {
        let rules = ColumnRules::from_properties(&props(&[
            ("column.exclude.list", "public.users.bio"),
            ("column.mask.with.3.chars", "public\\.users\\.ssn"),
            ("column.mask.hash.SHA-256.with.salt.pepper", ".*\\.email"),
        ]))
        .unwrap();
        let plan = rules.plan(&table());
        assert_eq!(
            plan.columns.iter().map(|c| c.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(plan.columns[2].transform, Some(ColumnTransform::Mask(3)));
        let hashed = plan.columns[1].transform.as_ref().unwrap().apply("a@b.c");
        assert_eq!(hashed.len(), 64);
        // Debezium 3.6's digests of the same values (tests/debezium_oracle.rs): V1 over
        // the Java-serialised string, V2 over its UTF-8 bytes.
        let hash = |v2: bool| ColumnTransform::Hash {
            algorithm: HashAlgorithm::Sha256,
            salt: "s4lt".into(),
            java_serialized: !v2,
        };
        assert_eq!(
            hash(false).apply("Ada"),
            "8bbc219f7daefb0ae68b7cec77f36c567a9efec005d3b9f3e6b68d0ba694ab18"
        );
        assert_eq!(
            hash(true).apply("Ada"),
            "8921a6a12eeab5ec4322d2da56f70312533326e063b5d111c3782077f387b1d8"
        );
        // Modified UTF-8: NUL as two bytes, a 4-byte character as two surrogates.
        assert_eq!(
            java_serialized_string("a\0🦀"),
            [
                0xAC, 0xED, 0, 5, 0x74, 0, 9, b'a', 0xC0, 0x80, 0xED, 0xA0, 0xBE, 0xED, 0xB6, 0x80
            ]
        );
        assert_eq!(
            java_serialized_string(&"x".repeat(70_000))[4..13],
            [0x7C, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
        assert_eq!(ColumnTransform::Truncate(2).apply("zoë"), "zo");
        // Whole-name match: a pattern matching only part of the name does not apply.
        let rules =
            ColumnRules::from_properties(&props(&[("column.include.list", "public.users.i")]))
                .unwrap();
        assert!(rules.plan(&table()).columns.is_empty());
    }

    #[test]
    fn message_key_columns_override_the_primary_key() {
        let rules = ColumnRules::from_properties(&props(&[(
            "message.key.columns",
            "public.users:email,ssn;other.t:x",
        )]))
        .unwrap();
        assert_eq!(rules.plan(&table()).key, vec![1, 2]);
    }

    #[test]
    fn bad_properties_are_named() {
        for (k, v) in [
            ("column.include.list", "(unclosed"),
            ("column.mask.with.x.chars", "a"),
            ("column.mask.hash.CRC.with.salt.s", "a"),
            ("message.key.columns", "nocolon"),
            ("schema.name.adjustment.mode", "loose"),
        ] {
            let err = ColumnRules::from_properties(&props(&[(k, v)])).unwrap_err();
            assert_eq!(err.property, k);
        }
        let err = ColumnRules::from_properties(&props(&[
            ("column.include.list", "a"),
            ("column.exclude.list", "b"),
        ]))
        .unwrap_err();
        assert_eq!(err.property, "column.exclude.list");
    }

    #[test]
    fn name_adjustment() {
        assert_eq!(
            NameAdjustment::Avro.adjust_full("my-server.public.1st"),
            "my_server.public._st"
        );
        assert_eq!(NameAdjustment::AvroUnicode.adjust("a-b"), "a_u002db");
        assert_eq!(NameAdjustment::None.adjust("a-b"), "a-b");
    }
}
