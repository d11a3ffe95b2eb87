//! The sink on synthetic events: formats, rolls, schema copies, recovery.

use std::sync::Arc;

use apache_avro::types::Value as Avro;
use outflow_core::{
    ChangeEvent, ColumnSchema, DataType, EventBatch, EventKind, SchemaVersion, Sink,
    SourcePosition, TableId, TableSchema, Value,
};
use outflow_interchange::RecordStage;
use outflow_interchange::transforms::TransformChain;
use outflow_lake::{LakeSink, LakeSinkConfig};
use outflow_postgres::position::{Lsn, PgPosition};

use crate::{field, formatter, props, read_avro, visible_files};

fn table(version: u64, columns: &[&str]) -> Arc<TableSchema> {
    let mut cols = vec![ColumnSchema::new("id", DataType::Int32, false)];
    cols.extend(
        columns
            .iter()
            .map(|c| ColumnSchema::new(*c, DataType::String { length: None }, true)),
    );
    Arc::new(
        TableSchema::new(
            TableId::new("public", "items"),
            SchemaVersion(version),
            cols,
            &["id"],
        )
        .unwrap(),
    )
}

fn position(n: u64) -> SourcePosition {
    SourcePosition::from(PgPosition {
        snapshot_cursor: None,
        lsn_commit: Lsn(1000 + n),
        lsn: Lsn(1000 + n),
        seq: 0,
        tx_id: None,
        snapshot: false,
    })
}

/// Insert of row `n` at 2024-05-01T10:00Z + `hour_offset` hours.
fn insert(table: &Arc<TableSchema>, n: u64, hour_offset: i64) -> ChangeEvent {
    let mut after = vec![Value::Int32(i32::try_from(n).unwrap())];
    after.extend((1..table.columns.len()).map(|_| Value::String(format!("row {n}"))));
    ChangeEvent {
        position: position(n),
        source_ts_us: Some(1_714_557_600_000_000 + hour_offset * 3_600_000_000),
        kind: EventKind::Insert {
            table: Arc::clone(table),
            after,
        },
    }
}

async fn sink(
    root: &std::path::Path,
    extra: &[(&str, &str)],
    committed: Option<SourcePosition>,
) -> RecordStage<LakeSink> {
    let path = root.to_str().unwrap();
    let mut p = props(&[("lake.path", path)]);
    p.extend(props(extra));
    RecordStage::new(
        formatter("shop"),
        TransformChain::default(),
        LakeSink::start(
            LakeSinkConfig::from_properties("items-lake", &p).unwrap(),
            committed,
        )
        .await
        .unwrap(),
    )
}

fn ids(records: &[Avro]) -> Vec<i32> {
    records
        .iter()
        .map(|r| match field(field(r, "after"), "id") {
            Avro::Int(id) => *id,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn avro_files_roll_by_count_hour_and_schema_and_read_back_with_apache_avro() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = sink(dir.path(), &[("lake.flush.size", "4")], None).await;
    let v1 = table(1, &["name"]);
    let v2 = table(2, &["name", "colour"]);
    // 1..=6 in hour 0 (a count roll after 4), 7..=8 in hour 1, 9..=10 with a new schema.
    let mut events: Vec<ChangeEvent> = (1..=6).map(|n| insert(&v1, n, 0)).collect();
    events.extend((7..=8).map(|n| insert(&v1, n, 1)));
    events.extend((9..=10).map(|n| insert(&v2, n, 1)));
    let mut handles = Vec::new();
    for chunk in events.chunks(2) {
        handles.push(lake.write(EventBatch::new(chunk.to_vec())).await.unwrap());
    }
    lake.flush().await.unwrap();
    for handle in handles {
        handle.wait().await.unwrap();
    }
    let files = visible_files(dir.path());
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("shop.public.items/date=2024-05-01/hour=1")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.contains("/hour=10/"))
            && names.iter().any(|n| n.contains("/hour=11/"))
    );
    // Rolls: the count roll (4 records), then the schema change, then the final flush.
    assert!(files.len() >= 4, "{names:?}");
    let mut all = Vec::new();
    // Order files by their first position token: that is the event order.
    let mut by_first: Vec<_> = files.clone();
    by_first.sort_by_key(|f| {
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        name.split('+').nth(1).unwrap().to_owned()
    });
    for file in &by_first {
        let reader = apache_avro::Reader::new(std::fs::File::open(file).unwrap()).unwrap();
        let schema = reader.writer_schema().clone();
        let records: Vec<Avro> = reader.map(Result::unwrap).collect();
        assert!(!records.is_empty());
        let has_colour = format!("{schema:?}").contains("colour");
        assert_eq!(
            has_colour,
            ids(&records)[0] >= 9,
            "one writer schema per file"
        );
        all.extend(records);
    }
    assert_eq!(ids(&all), (1..=10).collect::<Vec<_>>());
    assert_eq!(field(&all[0], "op"), &Avro::String("c".into()));
    assert_eq!(
        field(field(&all[0], "source"), "table"),
        &Avro::String("items".into())
    );
    // One schema copy per writer schema.
    let schemas =
        outflow_lake::layout::walk(&dir.path().join("_schemas/shop.public.items")).unwrap();
    assert_eq!(schemas.len(), 2, "{schemas:?}");
    assert_eq!(read_avro(&files).len(), 10);
}

#[tokio::test]
async fn json_lines_gzip_hold_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let mut lake = sink(
        dir.path(),
        &[("lake.format", "json"), ("lake.compression", "gzip")],
        None,
    )
    .await;
    let v1 = table(1, &["name"]);
    let handle = lake
        .write(EventBatch::new(
            (1..=3).map(|n| insert(&v1, n, 0)).collect(),
        ))
        .await
        .unwrap();
    lake.flush().await.unwrap();
    handle.wait().await.unwrap();
    let files = visible_files(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].to_str().unwrap().ends_with(".jsonl.gz"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&files[0]).unwrap()),
        &mut text,
    )
    .unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["after"]["id"], 3);
    assert_eq!(lines[2]["after"]["name"], "row 3");
    assert_eq!(lines[0]["op"], "c");
    assert_eq!(lines[0]["source"]["lsn"], 1001);
}

#[tokio::test]
async fn recovery_removes_temporary_files_and_files_past_the_committed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = table(1, &["name"]);
    {
        let mut lake = sink(dir.path(), &[], None).await;
        // Committed: 1..=3.
        let h = lake
            .write(EventBatch::new(
                (1..=3).map(|n| insert(&v1, n, 0)).collect(),
            ))
            .await
            .unwrap();
        lake.flush().await.unwrap();
        h.wait().await.unwrap();
        // Visible but never committed (the crash came before the offset commit): 4..=5.
        let h = lake
            .write(EventBatch::new(
                (4..=5).map(|n| insert(&v1, n, 0)).collect(),
            ))
            .await
            .unwrap();
        lake.flush().await.unwrap();
        h.wait().await.unwrap();
        // Being written when the process died: 6..=7 (a temporary file).
        let _h = lake
            .write(EventBatch::new(
                (6..=7).map(|n| insert(&v1, n, 0)).collect(),
            ))
            .await
            .unwrap();
        std::mem::forget(lake); // no drop code runs in a crash either
    }
    let all = outflow_lake::layout::walk(dir.path()).unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    // Another connector's file in the same directory is left alone.
    let other = visible_files(dir.path())[0].with_file_name("other+a+b.avro");
    std::fs::write(&other, b"x").unwrap();

    let mut lake = sink(dir.path(), &[], Some(position(3))).await;
    let kept = visible_files(dir.path());
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&other));
    // The source resends 4..=7; each lands once.
    let h = lake
        .write(EventBatch::new(
            (4..=7).map(|n| insert(&v1, n, 0)).collect(),
        ))
        .await
        .unwrap();
    lake.flush().await.unwrap();
    h.wait().await.unwrap();
    let files: Vec<_> = visible_files(dir.path())
        .into_iter()
        .filter(|f| *f != other)
        .collect();
    assert_eq!(ids(&read_avro(&files)), (1..=7).collect::<Vec<_>>());
}

#[tokio::test]
async fn parquet_files_flatten_the_envelope_and_read_back_with_the_parquet_reader() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::{Field, RowAccessor};

    for codec in ["snappy", "zstd", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = sink(
            dir.path(),
            &[("lake.format", "parquet"), ("lake.compression", codec)],
            None,
        )
        .await;
        let v1 = table(1, &["name"]);
        let mut events: Vec<ChangeEvent> = (1..=3).map(|n| insert(&v1, n, 0)).collect();
        events.push(ChangeEvent {
            position: position(4),
            source_ts_us: Some(1_714_557_600_000_000),
            kind: EventKind::Delete {
                table: Arc::clone(&v1),
                before: vec![Value::Int32(2), Value::Null],
            },
        });
        let handle = lake.write(EventBatch::new(events)).await.unwrap();
        lake.flush().await.unwrap();
        handle.wait().await.unwrap();
        let files = visible_files(dir.path());
        assert_eq!(files.len(), 1);
        assert!(files[0].to_str().unwrap().ends_with(".parquet"));
        let reader =
            SerializedFileReader::try_from(std::fs::File::open(&files[0]).unwrap()).unwrap();
        let columns: Vec<String> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        for expected in [
            "before.id",
            "before.name",
            "after.id",
            "after.name",
            "source.lsn",
            "source.table",
            "op",
            "ts_ms",
        ] {
            assert!(
                columns.iter().any(|c| c == expected),
                "{codec}: {expected} missing from {columns:?}"
            );
        }
        let index = |name: &str| columns.iter().position(|c| c == name).unwrap();
        let rows: Vec<parquet::record::Row> = reader
            .get_row_iter(None)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].get_string(index("op")).unwrap(), "c");
        assert_eq!(rows[2].get_int(index("after.id")).unwrap(), 3);
        assert_eq!(rows[2].get_string(index("after.name")).unwrap(), "row 3");
        assert_eq!(rows[3].get_string(index("op")).unwrap(), "d");
        assert_eq!(rows[3].get_int(index("before.id")).unwrap(), 2);
        let (_, after_id) = rows[3].get_column_iter().nth(index("after.id")).unwrap();
        assert_eq!(after_id, &Field::Null);
        assert_eq!(rows[0].get_long(index("source.lsn")).unwrap(), 1001);
    }
}

#[tokio::test]
async fn every_avro_codec_reads_back() {
    for codec in ["null", "deflate", "snappy"] {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = sink(dir.path(), &[("lake.compression", codec)], None).await;
        let v1 = table(1, &["name"]);
        // Enough rows for several 64 KiB blocks.
        let events: Vec<ChangeEvent> = (1..=3000).map(|n| insert(&v1, n, 0)).collect();
        let handle = lake.write(EventBatch::new(events)).await.unwrap();
        lake.flush().await.unwrap();
        handle.wait().await.unwrap();
        let records = read_avro(&visible_files(dir.path()));
        assert_eq!(ids(&records), (1..=3000).collect::<Vec<_>>(), "{codec}");
    }
}
