//! Hot path of the envelope and encoders: a 10-column row (int, bigint, numeric, text,
//! timestamptz, jsonb, bool, uuid, double, date) through the Debezium formatter and the
//! Avro / JSON encoders. Throughput is reported per event; the bench runs on one core.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;

/// The daemon's allocator, so the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outflow_core::ChangeEvent;
use outflow_interchange::encoding::{avro, json};
use outflow_interchange::envelope::{EnvelopeConfig, EnvelopeFormatter, Record};
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;

fn events(n: u64) -> Vec<ChangeEvent> {
    outflow_core::fixtures::inserts(0, n)
}

fn formatter() -> EnvelopeFormatter {
    let props: BTreeMap<String, String> = [
        ("topic.prefix".to_owned(), "bench".to_owned()),
        ("database.dbname".to_owned(), "db".to_owned()),
    ]
    .into();
    EnvelopeFormatter::new(EnvelopeConfig::from_properties(&POSTGRES_SOURCE_BLOCK, &props).unwrap())
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
