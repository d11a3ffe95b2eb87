//! Binlog row-event decoding, rows per second on one core: 100,000 rows of a 10-column
//! table (int, bigint, decimal, varchar, datetime(6), JSON, bool, uuid, double, date)
//! written by a testkit MariaDB (binlog_row_metadata=FULL), fetched once, then decoded
//! the way the source does it: event body → rows read with the table map's `RowLayout`
//! (`decode_rows`) → typed values; and, for comparison, through mysql_common's row
//! reader (`rows()` + `binlog_row_values`), the path before.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use mysql_async::binlog::events::{Event, EventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Row};
use outflow_mysql::types::{RowLayout, binlog_row_values, decode_rows, table_map_shape};

/// The daemon's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: u64 = 100_000;

/// Writes the rows and reads their binlog events back from the server.
fn binlog_events() -> (Vec<Event>, HashMap<u64, TableMapEvent<'static>>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = outflow_testkit::mariadb().create_database("bench").await;
        let mut conn = db.connect().await;
        conn.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, account BIGINT, amount DECIMAL(12,2),
               note VARCHAR(64), created DATETIME(6), payload JSON, active BOOL, ref UUID,
               score DOUBLE, day DATE)",
        )
        .await
        .unwrap();
        let status: Row = conn.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
        let (file, pos): (String, u64) = (status.get(0).unwrap(), status.get(1).unwrap());
        conn.query_drop(format!(
            "INSERT INTO t SELECT seq, seq * 1000003, seq / 7, CONCAT('row number ', seq, ' with some text'),
               TIMESTAMP('2023-11-14 22:13:20.123456') + INTERVAL seq SECOND,
               CONCAT('{{\"k\": ', seq, ', \"tags\": [\"a\", \"b\"]}}'), seq % 2,
               UUID(), seq * 0.5, DATE('2024-02-29') + INTERVAL seq % 1000 DAY
             FROM seq_1_to_{ROWS}"
        ))
        .await
        .unwrap();
        let mut binlog = db.connect().await;
        binlog.query_drop("SET @mariadb_slave_capability = 4").await.unwrap();
        let request = BinlogStreamRequest::new(64_999)
            .with_filename(file.as_bytes())
            .with_pos(pos)
            .with_non_blocking();
        let mut stream = binlog.get_binlog_stream(request).await.unwrap();
        let mut events = Vec::new();
        let mut maps = HashMap::new();
        while let Some(event) = stream.next().await {
            let event = event.unwrap();
            if let Ok(Some(EventData::TableMapEvent(tme))) = event.read_data() {
                maps.insert(tme.table_id(), tme.into_owned());
            }
            events.push(event);
        }
        (events, maps)
    })
}

/// Decodes every rows event with the source's row reader; returns the rows decoded.
fn decode_direct(events: &[Event], maps: &HashMap<u64, TableMapEvent<'static>>) -> u64 {
    let mut rows = 0;
    let mut layouts = HashMap::new();
    for event in events {
        let Ok(Some(EventData::RowsEvent(data))) = event.read_data() else {
            continue;
        };
        let tme = &maps[&data.table_id()];
        let (shape, layout) = layouts.entry(data.table_id()).or_insert_with(|| {
            let shape = table_map_shape(tme).unwrap();
            let layout = RowLayout::new(tme, &shape.codecs).unwrap();
            (shape, layout)
        });
        for (_, after) in decode_rows(&data, layout, &shape.codecs).unwrap() {
            black_box(after);
            rows += 1;
        }
    }
    rows
}

/// Decodes every rows event through mysql_common's row reader (the path before the
/// source had its own); returns the rows decoded.
fn decode(events: &[Event], maps: &HashMap<u64, TableMapEvent<'static>>) -> u64 {
    let mut rows = 0;
    let mut shapes = HashMap::new();
    for event in events {
        let Ok(Some(EventData::RowsEvent(data))) = event.read_data() else {
            continue;
        };
        let tme = &maps[&data.table_id()];
        let shape = shapes
            .entry(data.table_id())
            .or_insert_with(|| table_map_shape(tme).unwrap());
        for row in data.rows(tme) {
            let (_, after) = row.unwrap();
            let values = binlog_row_values(after.unwrap(), &shape.codecs).unwrap();
            black_box(values);
            rows += 1;
        }
    }
    rows
}

fn row_decode(c: &mut Criterion) {
    let (events, maps) = binlog_events();
    assert_eq!(decode(&events, &maps), ROWS);
    assert_eq!(decode_direct(&events, &maps), ROWS);
    let mut group = c.benchmark_group("mysql_row_decode");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.bench_function("write_rows_10_columns", |b| {
        b.iter(|| decode_direct(black_box(&events), &maps));
    });
    group.bench_function("write_rows_10_columns_via_mysql_common_rows", |b| {
        b.iter(|| decode(black_box(&events), &maps));
    });
    group.finish();
}

criterion_group!(benches, row_decode);
criterion_main!(benches);
