//! Parquet files with the Debezium envelope flattened into columns.
//!
//! The record value's struct fields become top-level columns named by their path:
//! `before.<column>`, `after.<column>`, `source.<field>`, `op`, `ts_ms`,
//! `transaction.<field>`; deeper structs flatten the same way (`after.geom.wkb`). Every
//! column is OPTIONAL (a null `before` makes all `before.*` null). Arrays and maps are
//! written as JSON text. Connect types map to Parquet physical/logical types: INT8/16 →
//! INT32 with INTEGER(8/16), INT32, INT64, FLOAT, DOUBLE, BOOLEAN, STRING → BYTE_ARRAY
//! STRING (JSON for `io.debezium.data.Json`), BYTES → BYTE_ARRAY; Connect `Decimal` →
//! BYTE_ARRAY DECIMAL(precision, scale) (precision from `connect.decimal.precision`, 38
//! when unknown), `Date` → DATE, Connect/Debezium `Timestamp` → TIMESTAMP(MILLIS) and
//! `MicroTimestamp` → TIMESTAMP(MICROS), both not adjusted to UTC, as Debezium's are local.
//!
//! Values are buffered per column and written as a row group every
//! [`ROW_GROUP_ROWS`] rows and when the file is finished; the low-level column writers
//! of the `parquet` crate do the encoding (no Arrow dependency).

use std::io::Write;
use std::sync::Arc;

use crate::connect::{ConnectSchema, Datum, SchemaKind};
use crate::encoding::json;
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

/// Rows per row group.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Compression of Parquet pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCodec {
    /// No compression.
    Uncompressed,
    /// Snappy.
    Snappy,
    /// Zstandard (level 3).
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafKind {
    Bool,
    Int32,
    Int64,
    Float,
    Double,
    Text,
    Bytes,
    JsonText,
}

#[derive(Debug)]
enum Values {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    Bytes(Vec<ByteArray>),
}

#[derive(Debug)]
struct Leaf {
    path: Vec<usize>,
    kind: LeafKind,
    schema: Arc<ConnectSchema>,
    defs: Vec<i16>,
    values: Values,
}

fn leaf_type(name: &str, schema: &ConnectSchema) -> Result<(Type, LeafKind), ParquetError> {
    let semantic = schema.name.as_deref().unwrap_or("");
    let parameter = |key: &str| {
        schema
            .parameters
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse::<i32>().ok())
    };
    let (physical, logical, kind) = match &schema.kind {
        SchemaKind::Boolean => (PhysicalType::BOOLEAN, None, LeafKind::Bool),
        SchemaKind::Int8 => (
            PhysicalType::INT32,
            Some(LogicalType::Integer {
                bit_width: 8,
                is_signed: true,
            }),
            LeafKind::Int32,
        ),
        SchemaKind::Int16 => (
            PhysicalType::INT32,
            Some(LogicalType::Integer {
                bit_width: 16,
                is_signed: true,
            }),
            LeafKind::Int32,
        ),
        SchemaKind::Int32 => {
            let logical = matches!(
                semantic,
                "org.apache.kafka.connect.data.Date" | "io.debezium.time.Date"
            )
            .then_some(LogicalType::Date);
            (PhysicalType::INT32, logical, LeafKind::Int32)
        }
        SchemaKind::Int64 => {
            let logical = match semantic {
                "org.apache.kafka.connect.data.Timestamp" | "io.debezium.time.Timestamp" => {
                    Some(LogicalType::Timestamp {
                        is_adjusted_to_u_t_c: false,
                        unit: TimeUnit::MILLIS,
                    })
                }
                "io.debezium.time.MicroTimestamp" => Some(LogicalType::Timestamp {
                    is_adjusted_to_u_t_c: false,
                    unit: TimeUnit::MICROS,
                }),
                _ => None,
            };
            (PhysicalType::INT64, logical, LeafKind::Int64)
        }
        SchemaKind::Float32 => (PhysicalType::FLOAT, None, LeafKind::Float),
        SchemaKind::Float64 => (PhysicalType::DOUBLE, None, LeafKind::Double),
        SchemaKind::String => {
            let logical = if semantic == "io.debezium.data.Json" {
                LogicalType::Json
            } else {
                LogicalType::String
            };
            (PhysicalType::BYTE_ARRAY, Some(logical), LeafKind::Text)
        }
        SchemaKind::Bytes => {
            let logical = (semantic == "org.apache.kafka.connect.data.Decimal").then(|| {
                LogicalType::Decimal {
                    scale: parameter("scale").unwrap_or(0),
                    precision: parameter("connect.decimal.precision")
                        .filter(|p| *p > 0)
                        .unwrap_or(38),
                }
            });
            (PhysicalType::BYTE_ARRAY, logical, LeafKind::Bytes)
        }
        SchemaKind::Array(_) | SchemaKind::Map(..) | SchemaKind::Struct(_) => (
            PhysicalType::BYTE_ARRAY,
            Some(LogicalType::Json),
            LeafKind::JsonText,
        ),
    };
    let mut builder = Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical.clone());
    if let Some(LogicalType::Decimal { scale, precision }) = logical {
        builder = builder.with_scale(scale).with_precision(precision);
    }
    Ok((builder.build()?, kind))
}

fn collect(
    schema: &Arc<ConnectSchema>,
    name: &str,
    path: &mut Vec<usize>,
    fields: &mut Vec<Arc<Type>>,
    leaves: &mut Vec<Leaf>,
) -> Result<(), ParquetError> {
    if let SchemaKind::Struct(children) = &schema.kind
        && !children.is_empty()
    {
        for (i, child) in children.iter().enumerate() {
            let child_name = if name.is_empty() {
                child.name.clone()
            } else {
                format!("{name}.{}", child.name)
            };
            path.push(i);
            collect(&child.schema, &child_name, path, fields, leaves)?;
            path.pop();
        }
        return Ok(());
    }
    let column = if name.is_empty() { "value" } else { name };
    let (parquet_type, kind) = leaf_type(column, schema)?;
    fields.push(Arc::new(parquet_type));
    let values = match kind {
        LeafKind::Bool => Values::Bool(Vec::new()),
        LeafKind::Int32 => Values::Int32(Vec::new()),
        LeafKind::Int64 => Values::Int64(Vec::new()),
        LeafKind::Float => Values::Float(Vec::new()),
        LeafKind::Double => Values::Double(Vec::new()),
        LeafKind::Text | LeafKind::Bytes | LeafKind::JsonText => Values::Bytes(Vec::new()),
    };
    leaves.push(Leaf {
        path: path.clone(),
        kind,
        schema: Arc::clone(schema),
        defs: Vec::new(),
        values,
    });
    Ok(())
}

/// Error for a value that does not fit its column (an encoder bug).
fn mismatch(leaf: &Leaf, datum: &Datum) -> ParquetError {
    ParquetError::General(format!(
        "value {datum:?} does not fit a {:?} column",
        leaf.kind
    ))
}

/// A Parquet file being written.
pub struct ParquetFile<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    leaves: Vec<Leaf>,
    rows: usize,
    text: String,
}

impl<W: Write + Send> std::fmt::Debug for ParquetFile<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFile")
            .field("columns", &self.leaves.len())
            .field("buffered_rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> ParquetFile<W> {
    /// Starts a file for records of `schema` (the record value's schema).
    pub fn new(
        out: W,
        schema: &Arc<ConnectSchema>,
        codec: ParquetCodec,
    ) -> Result<Self, ParquetError> {
        let mut fields = Vec::new();
        let mut leaves = Vec::new();
        collect(schema, "", &mut Vec::new(), &mut fields, &mut leaves)?;
        let message = Type::group_type_builder("envelope")
            .with_fields(fields)
            .build()?;
        let compression = match codec {
            ParquetCodec::Uncompressed => Compression::UNCOMPRESSED,
            ParquetCodec::Snappy => Compression::SNAPPY,
            ParquetCodec::Zstd => Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3)?),
        };
        let properties = WriterProperties::builder()
            .set_compression(compression)
            .set_created_by(format!("outflow {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = SerializedFileWriter::new(out, Arc::new(message), Arc::new(properties))?;
        Ok(Self {
            writer,
            leaves,
            rows: 0,
            text: String::new(),
        })
    }

    /// Buffers one record; writes a row group when enough rows are buffered. Returns the
    /// bytes written to the file so far.
    pub fn append(&mut self, datum: &Datum) -> Result<usize, ParquetError> {
        for leaf in &mut self.leaves {
            let mut value = Some(datum);
            for &i in &leaf.path {
                value = match value {
                    Some(Datum::Struct(fields)) => fields.get(i),
                    _ => None,
                };
            }
            let value = value.filter(|v| !v.is_null());
            let Some(value) = value else {
                leaf.defs.push(0);
                continue;
            };
            leaf.defs.push(1);
            match (&mut leaf.values, value) {
                (Values::Bool(v), Datum::Boolean(b)) => v.push(*b),
                (Values::Int32(v), Datum::Int8(n)) => v.push(i32::from(*n)),
                (Values::Int32(v), Datum::Int16(n)) => v.push(i32::from(*n)),
                (Values::Int32(v), Datum::Int32(n)) => v.push(*n),
                (Values::Int64(v), Datum::Int64(n)) => v.push(*n),
                (Values::Float(v), Datum::Float32(n)) => v.push(*n),
                (Values::Double(v), Datum::Float64(n)) => v.push(*n),
                (Values::Bytes(v), Datum::Bytes(b)) if leaf.kind == LeafKind::Bytes => {
                    v.push(ByteArray::from(b.clone()));
                }
                (Values::Bytes(v), d) if leaf.kind == LeafKind::Text && d.as_str().is_some() => {
                    v.push(ByteArray::from(
                        d.as_str().unwrap_or_default().as_bytes().to_vec(),
                    ));
                }
                (Values::Bytes(v), d) if leaf.kind == LeafKind::JsonText => {
                    self.text.clear();
                    json::write_value(&mut self.text, &leaf.schema, d)
                        .map_err(|e| ParquetError::General(e.to_string()))?;
                    v.push(ByteArray::from(self.text.as_bytes().to_vec()));
                }
                (_, d) => return Err(mismatch(leaf, d)),
            }
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS {
            self.write_row_group()?;
        }
        Ok(self.writer.bytes_written())
    }

    fn write_row_group(&mut self) -> Result<(), ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut leaves = self.leaves.iter_mut();
        while let Some(mut column) = group.next_column()? {
            let Some(leaf) = leaves.next() else {
                return Err(ParquetError::General("more columns than leaves".into()));
            };
            let defs = Some(leaf.defs.as_slice());
            match (column.untyped(), &leaf.values) {
                (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => {
                    w.write_batch(v, defs, None)
                }
                (ColumnWriter::Int32ColumnWriter(w), Values::Int32(v)) => {
                    w.write_batch(v, defs, None)
                }
                (ColumnWriter::Int64ColumnWriter(w), Values::Int64(v)) => {
                    w.write_batch(v, defs, None)
                }
                (ColumnWriter::FloatColumnWriter(w), Values::Float(v)) => {
                    w.write_batch(v, defs, None)
                }
                (ColumnWriter::DoubleColumnWriter(w), Values::Double(v)) => {
                    w.write_batch(v, defs, None)
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Values::Bytes(v)) => {
                    w.write_batch(v, defs, None)
                }
                _ => Err(ParquetError::General(
                    "column writer and buffer disagree".into(),
                )),
            }?;
            column.close()?;
            leaf.defs.clear();
            match &mut leaf.values {
                Values::Bool(v) => v.clear(),
                Values::Int32(v) => v.clear(),
                Values::Int64(v) => v.clear(),
                Values::Float(v) => v.clear(),
                Values::Double(v) => v.clear(),
                Values::Bytes(v) => v.clear(),
            }
        }
        group.close()?;
        self.rows = 0;
        Ok(())
    }

    /// Writes the buffered rows and the footer; returns the underlying writer.
    pub fn finish(mut self) -> Result<W, ParquetError> {
        self.write_row_group()?;
        self.writer.into_inner()
    }
}
