//! Hot path of the lake sink: the 10-column row of `outflow_core::fixtures` through the
//! Debezium formatter and each file format into files on disk (rolls included: one per
//! 100,000 events, fsync and rename). Throughput is per event, on one core.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

/// The daemon's allocator, so the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outflow_core::{EventBatch, Sink};
use outflow_interchange::RecordStage;
use outflow_interchange::envelope::{EnvelopeConfig, EnvelopeFormatter};
use outflow_interchange::transforms::TransformChain;
use outflow_lake::{LakeSink, LakeSinkConfig};
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;

fn formatter() -> EnvelopeFormatter {
    let props: BTreeMap<String, String> = [
        ("topic.prefix".to_owned(), "bench".to_owned()),
        ("database.dbname".to_owned(), "db".to_owned()),
    ]
    .into();
    EnvelopeFormatter::new(EnvelopeConfig::from_properties(&POSTGRES_SOURCE_BLOCK, &props).unwrap())
}

fn bench(c: &mut Criterion) {
    const N: u64 = 1000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("lake write, 10-column row");
    group.throughput(Throughput::Elements(N));
    for (name, format, compression) in [
        ("avro snappy", "avro", "snappy"),
        ("avro null", "avro", "null"),
        ("json", "json", "none"),
        ("parquet snappy", "parquet", "snappy"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let props: BTreeMap<String, String> = [
            ("lake.path", dir.path().to_str().unwrap()),
            ("lake.format", format),
            ("lake.compression", compression),
            ("lake.flush.size", "100000"),
            ("lake.max.pending.batches", "1000000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut sink = runtime.block_on(async {
            RecordStage::new(
                formatter(),
                TransformChain::default(),
                LakeSink::start(
                    LakeSinkConfig::from_properties("bench", &props).unwrap(),
                    None,
                )
                .await
                .unwrap(),
            )
        });
        let mut next = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    next += N;
                    EventBatch::new(outflow_core::fixtures::inserts(next, N))
                },
                |batch| {
                    runtime.block_on(async {
                        // Handles resolve at the rolls; dropping them is fine here.
                        drop(sink.write(batch).await.unwrap());
                    });
                },
                criterion::BatchSize::SmallInput,
            );
        });
        runtime.block_on(async { sink.flush().await.unwrap() });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
