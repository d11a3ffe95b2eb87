//! A Kafka Connect data model: schemas and values as Kafka Connect represents them.
//!
//! Debezium builds every record as a Connect schema plus a Connect value, and the
//! converters (Confluent's AvroConverter, Kafka's JsonConverter) turn those into bytes.
//! outflow follows the same two steps so its bytes match: the envelope formatter
//! ([`crate::envelope`]) produces [`ConnectSchema`] + [`Datum`], and the encoders
//! ([`crate::encoding`]) turn them into Avro or JSON. Keeping this model in the middle is
//! what keeps the envelope (which record) apart from the encoding (which bytes).
//!
//! Struct values are positional ([`Datum::Struct`] holds one datum per schema field, in
//! field order), which keeps encoding a straight walk over schema and value together.

use std::sync::Arc;

/// The Connect type of a schema, with its children.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaKind {
    /// INT8.
    Int8,
    /// INT16.
    Int16,
    /// INT32.
    Int32,
    /// INT64.
    Int64,
    /// FLOAT32.
    Float32,
    /// FLOAT64.
    Float64,
    /// BOOLEAN.
    Boolean,
    /// STRING.
    String,
    /// BYTES.
    Bytes,
    /// ARRAY of the element schema.
    Array(Arc<ConnectSchema>),
    /// MAP of key and value schemas.
    Map(Arc<ConnectSchema>, Arc<ConnectSchema>),
    /// STRUCT with its fields in order.
    Struct(Vec<Field>),
}

/// A field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Field schema.
    pub schema: Arc<ConnectSchema>,
}

impl Field {
    /// A field.
    pub fn new(name: impl Into<String>, schema: impl Into<Arc<ConnectSchema>>) -> Self {
        Self {
            name: name.into(),
            schema: schema.into(),
        }
    }
}

/// A Connect schema: type plus the optional metadata Connect carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSchema {
    /// The type.
    pub kind: SchemaKind,
    /// Whether null is allowed.
    pub optional: bool,
    /// Default value.
    pub default: Option<Datum>,
    /// Schema name (logical type or record name).
    pub name: Option<String>,
    /// Schema version.
    pub version: Option<i32>,
    /// Documentation.
    pub doc: Option<String>,
    /// Parameters, in insertion order (Connect keeps a `LinkedHashMap`).
    pub parameters: Vec<(String, String)>,
}

impl ConnectSchema {
    /// A required schema of this kind with no metadata.
    pub fn new(kind: SchemaKind) -> Self {
        Self {
            kind,
            optional: false,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
        }
    }

    /// A required struct.
    pub fn record(name: impl Into<String>, fields: Vec<Field>) -> Self {
        Self::new(SchemaKind::Struct(fields)).named(name)
    }

    /// Makes the schema optional.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Sets the name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the version.
    #[must_use]
    pub fn versioned(mut self, version: i32) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the doc.
    #[must_use]
    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.doc = Some(doc.into());
        self
    }

    /// Adds a parameter.
    #[must_use]
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((key.into(), value.into()));
        self
    }

    /// Sets the default.
    #[must_use]
    pub fn with_default(mut self, default: Datum) -> Self {
        self.default = Some(default);
        self
    }

    /// The fields, for a struct schema.
    pub fn fields(&self) -> &[Field] {
        match &self.kind {
            SchemaKind::Struct(fields) => fields,
            _ => &[],
        }
    }
}

/// A Connect value.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// null.
    Null,
    /// BOOLEAN.
    Boolean(bool),
    /// INT8.
    Int8(i8),
    /// INT16.
    Int16(i16),
    /// INT32 (also Date, Time).
    Int32(i32),
    /// INT64 (also Timestamp and Debezium's temporal types).
    Int64(i64),
    /// FLOAT32.
    Float32(f32),
    /// FLOAT64.
    Float64(f64),
    /// STRING.
    String(String),
    /// STRING shared between many records (source names, op codes); encodes exactly
    /// like [`Datum::String`].
    Text(Arc<str>),
    /// BYTES (also Decimal: two's-complement big-endian unscaled value).
    Bytes(Vec<u8>),
    /// ARRAY.
    Array(Vec<Datum>),
    /// MAP, entries in order.
    Map(Vec<(Datum, Datum)>),
    /// STRUCT: one datum per field of its schema, in field order.
    Struct(Vec<Datum>),
}

impl Datum {
    /// True for null.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The text of a STRING datum, owned or shared.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            Self::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Schemas of Connect's and Debezium's common logical types.
pub mod logical {
    use super::{ConnectSchema, Field, SchemaKind};
    use std::sync::Arc;

    /// `org.apache.kafka.connect.data.Decimal` with scale and (if known) precision.
    pub fn decimal(scale: u32, precision: Option<u32>) -> ConnectSchema {
        let schema = ConnectSchema::new(SchemaKind::Bytes)
            .named("org.apache.kafka.connect.data.Decimal")
            .versioned(1)
            .parameter("scale", scale.to_string());
        match precision {
            Some(p) => schema.parameter("connect.decimal.precision", p.to_string()),
            None => schema,
        }
    }

    /// `io.debezium.data.VariableScaleDecimal`: struct of `scale` and `value`.
    pub fn variable_scale_decimal() -> ConnectSchema {
        ConnectSchema::record(
            "io.debezium.data.VariableScaleDecimal",
            vec![
                Field::new("scale", ConnectSchema::new(SchemaKind::Int32)),
                Field::new("value", ConnectSchema::new(SchemaKind::Bytes)),
            ],
        )
        .versioned(1)
        .doc("Variable scaled decimal")
    }

    /// A primitive with a versioned semantic name (`io.debezium.time.MicroTimestamp`, ...).
    pub fn semantic(kind: SchemaKind, name: &str) -> ConnectSchema {
        ConnectSchema::new(kind).named(name).versioned(1)
    }

    /// `io.debezium.data.Enum` with its allowed labels.
    pub fn enumeration(labels: &[String]) -> ConnectSchema {
        semantic(SchemaKind::String, "io.debezium.data.Enum").parameter("allowed", labels.join(","))
    }

    /// `io.debezium.data.geometry.Geometry` (or `Geography`): struct of `wkb`, `srid`.
    pub fn geometry(geography: bool) -> ConnectSchema {
        let name = if geography {
            "io.debezium.data.geometry.Geography"
        } else {
            "io.debezium.data.geometry.Geometry"
        };
        let doc = if geography { "Geography" } else { "Geometry" };
        ConnectSchema::record(
            name,
            vec![
                Field::new("wkb", ConnectSchema::new(SchemaKind::Bytes)),
                Field::new("srid", ConnectSchema::new(SchemaKind::Int32).optional()),
            ],
        )
        .versioned(1)
        .doc(doc)
    }

    /// `io.debezium.data.geometry.Point`: struct of `x`, `y`, `wkb`, `srid`.
    pub fn point() -> ConnectSchema {
        ConnectSchema::record(
            "io.debezium.data.geometry.Point",
            vec![
                Field::new("x", ConnectSchema::new(SchemaKind::Float64)),
                Field::new("y", ConnectSchema::new(SchemaKind::Float64)),
                Field::new("wkb", ConnectSchema::new(SchemaKind::Bytes).optional()),
                Field::new("srid", ConnectSchema::new(SchemaKind::Int32).optional()),
            ],
        )
        .versioned(1)
        .doc("Geometry (POINT)")
    }

    /// An array of optional elements.
    pub fn array_of(element: ConnectSchema) -> ConnectSchema {
        ConnectSchema::new(SchemaKind::Array(Arc::new(element.optional())))
    }
}
