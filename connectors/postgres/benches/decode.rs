//! pgoutput decoding and value parsing, rows per second on one core: a 10-column row
//! (int, bigint, numeric, text, timestamptz, jsonb, bool, uuid, double, date) as a
//! Postgres 15 walsender sends it in an Insert message, decoded and turned into typed
//! values with the relation's types.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outflow_postgres::catalog::TableInfo;
use outflow_postgres::pgoutput::{Decoder, Message, RelationColumn};
use outflow_postgres::relation::RelationCache;
use outflow_postgres::types::builtin;

/// The daemon's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COLUMNS: [(&str, u32, i32, &str); 10] = [
    ("id", 23, -1, "123456"),
    ("account", 20, -1, "9876543210"),
    ("amount", 1700, (12 << 16 | 2) + 4, "12345.67"),
    ("note", 25, -1, "row number 123456 with some text"),
    ("created", 1184, -1, "2023-11-14 22:13:20.123456+00"),
    ("payload", 3802, -1, r#"{"k": 123456, "tags": ["a", "b"]}"#),
    ("active", 16, -1, "t"),
    ("ref", 2950, -1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("score", 701, -1, "61728.5"),
    ("day", 1082, -1, "2024-02-29"),
];

fn insert_message() -> Vec<u8> {
    let mut m = vec![b'I'];
    m.extend_from_slice(&16384u32.to_be_bytes());
    m.push(b'N');
    m.extend_from_slice(&(COLUMNS.len() as u16).to_be_bytes());
    for (_, _, _, text) in COLUMNS {
        m.push(b't');
        m.extend_from_slice(&(text.len() as i32).to_be_bytes());
        m.extend_from_slice(text.as_bytes());
    }
    m
}

fn bench(c: &mut Criterion) {
    let message = insert_message();
    let mut cache = RelationCache::new();
    let columns: Vec<RelationColumn<'_>> = COLUMNS
        .iter()
        .map(|(name, oid, modifier, _)| RelationColumn {
            is_key: *name == "id",
            name,
            type_oid: *oid,
            type_modifier: *modifier,
        })
        .collect();
    let types = COLUMNS
        .iter()
        .map(|(_, oid, modifier, _)| (builtin(*oid).unwrap(), *modifier))
        .collect();
    let info = TableInfo {
        primary_key: vec!["id".into()],
        not_null: vec!["id".into()],
    };
    cache.define(16384, "public", "bench", &columns, types, &info);

    let mut group = c.benchmark_group("pgoutput 10-column insert");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode message", |b| {
        let mut decoder = Decoder::new();
        b.iter(|| black_box(decoder.decode(black_box(&message)).unwrap()));
    });
    group.bench_function("decode + typed row", |b| {
        let mut decoder = Decoder::new();
        b.iter(|| {
            let Message::Insert {
                relation_id, new, ..
            } = decoder.decode(black_box(&message)).unwrap()
            else {
                unreachable!()
            };
            black_box(cache.row(relation_id, &new).unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
