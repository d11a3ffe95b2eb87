//! Hot path of the envelope and encoders: a 10-column row (int, bigint, numeric, text,
//! timestamptz, jsonb, bool, uuid, double, date) through the Debezium formatter and the
//! Avro / JSON encoders. Throughput is reported per event; the bench runs on one core.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

/// The daemon's allocator, so the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outflow_core::encoding::{avro, json};
use outflow_core::envelope::{ConnectorFlavor, EnvelopeConfig, EnvelopeFormatter, Record};
use outflow_core::{
    ChangeEvent, ColumnSchema, DataType, Decimal, EventKind, Lsn, PgPosition, SchemaVersion,
    SourcePosition, TableId, TableSchema, Value,
};

fn table() -> Arc<TableSchema> {
    let c = ColumnSchema::new;
    Arc::new(
        TableSchema::new(
            TableId::new("public", "bench"),
            SchemaVersion::FIRST,
            vec![
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
            ],
            &["id"],
        )
        .unwrap(),
    )
}

fn events(n: u64) -> Vec<ChangeEvent> {
    let table = table();
    (0..n)
        .map(|i| ChangeEvent {
            position: SourcePosition::Postgres(PgPosition {
                snapshot_cursor: None,
                lsn_commit: Lsn(1_000_000 + i),
                lsn: Lsn(1_000_000 + i),
                seq: 1,
                tx_id: Some(7),
                snapshot: false,
            }),
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
            binlog: None,
        })
        .collect()
}

fn formatter() -> EnvelopeFormatter {
    let props: BTreeMap<String, String> = [
        ("topic.prefix".to_owned(), "bench".to_owned()),
        ("database.dbname".to_owned(), "db".to_owned()),
    ]
    .into();
    EnvelopeFormatter::new(
        EnvelopeConfig::from_properties(ConnectorFlavor::Postgres, &props).unwrap(),
    )
}

/// Confluent-framed Avro of a record's key and value; the bytes written.
fn avro_bytes(record: &Record, buf: &mut Vec<u8>) -> usize {
    let mut bytes = 0;
    for p in [record.key.as_ref(), record.value.as_ref()]
        .into_iter()
        .flatten()
    {
        buf.clear();
        avro::write_confluent_header(1, buf);
        avro::encode(&p.schema, &p.datum, buf).unwrap();
        bytes += buf.len();
    }
    bytes
}

fn bench(c: &mut Criterion) {
    const N: u64 = 1000;
    let events = events(N);
    let mut group = c.benchmark_group("10-column row");
    group.throughput(Throughput::Elements(N));

    group.bench_function("format (envelope only)", |b| {
        let mut f = formatter();
        let mut out = Vec::with_capacity(N as usize);
        b.iter(|| {
            out.clear();
            for e in &events {
                f.format(e, 1_700_000_000_000_000, &mut out).unwrap();
            }
            black_box(out.len())
        });
    });

    let mut f = formatter();
    let mut records = Vec::new();
    for e in &events {
        f.format(e, 1_700_000_000_000_000, &mut records).unwrap();
    }
    group.bench_function("avro encode (key + value)", |b| {
        let mut buf = Vec::with_capacity(1024);
        b.iter(|| {
            let mut bytes = 0;
            for r in &records {
                bytes += avro_bytes(r, &mut buf);
            }
            black_box(bytes)
        });
    });

    group.bench_function("format + avro encode", |b| {
        let mut f = formatter();
        let mut out = Vec::with_capacity(4);
        let mut buf = Vec::with_capacity(1024);
        b.iter(|| {
            let mut bytes = 0;
            for e in &events {
                out.clear();
                f.format(e, 1_700_000_000_000_000, &mut out).unwrap();
                for r in &out {
                    bytes += avro_bytes(r, &mut buf);
                }
            }
            black_box(bytes)
        });
    });

    group.bench_function("format + json encode (schemas.enable=false)", |b| {
        let mut f = formatter();
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            let mut bytes = 0;
            for e in &events {
                out.clear();
                f.format(e, 1_700_000_000_000_000, &mut out).unwrap();
                for r in &out {
                    for p in [r.key.as_ref(), r.value.as_ref()].into_iter().flatten() {
                        bytes += json::encode(&p.schema, Some(&p.datum), false)
                            .unwrap()
                            .map_or(0, |v| v.len());
                    }
                }
            }
            black_box(bytes)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
