//! A representative change event stream for benchmarks and tests: one 10-column table
//! (int, bigint, numeric, text, timestamptz, jsonb, bool, uuid, double, date) and its
//! inserts. Shared so every bench measures the same row.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

use std::sync::Arc;

use crate::{
    ChangeEvent, ColumnSchema, DataType, Decimal, EventKind, SchemaVersion, SequenceFamily,
    TableId, TableSchema, Value,
};

/// The 10-column table `public.bench`, keyed by `id`.
pub fn table() -> Arc<TableSchema> {
    let c = ColumnSchema::new;
    let columns = vec![
        c("id", DataType::Int32, false),
        c("account", DataType::Int64, true),
        c(
            "amount",
            DataType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
            true,
        ),
        c("note", DataType::String { length: None }, true),
        c(
            "created",
            DataType::TimestampTz { precision: Some(6) },
            true,
        ),
        c("payload", DataType::Json, true),
        c("active", DataType::Bool, true),
        c("ref", DataType::Uuid, true),
        c("score", DataType::Float64, true),
        c("day", DataType::Date, true),
    ];
    let primary_key = vec![0];
    Arc::new(TableSchema {
        id: TableId::new("public", "bench"),
        version: SchemaVersion::FIRST,
        columns,
        primary_key,
    })
}

/// `n` inserts into [`table`], [`SequenceFamily`] positions increasing from `first`.
pub fn inserts(first: u64, n: u64) -> Vec<ChangeEvent> {
    let table = table();
    (first..first + n)
        .map(|i| ChangeEvent {
            position: SequenceFamily::at(1_000_000 + i, false),
            source_ts_us: Some(1_700_000_000_000_000 + i as i64),
            kind: EventKind::Insert {
                table: Arc::clone(&table),
                after: vec![
                    Value::Int32(i as i32),
                    Value::Int64(i as i64 * 31),
                    Value::Decimal(Decimal::new(i as i64 * 101, 2)),
                    Value::String(format!("row number {i} with some text")),
                    Value::TimestampTz(1_700_000_000_000_000 + i as i64),
                    Value::Json(format!(r#"{{"k":{i},"tags":["a","b"]}}"#)),
                    Value::Bool(i % 2 == 0),
                    Value::Uuid([i as u8; 16]),
                    Value::Float64(i as f64 * 0.5),
                    Value::Date(19_000 + (i % 365) as i32),
                ],
            },
        })
        .collect()
}
