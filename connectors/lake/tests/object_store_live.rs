//! The lake on an object store: S3 API served by the testkit's moto server. Files are
//! staged locally, uploaded at each roll (multipart above 8 MiB), and recovery deletes
//! objects past the committed offset.

use std::sync::Arc;

use futures_util::StreamExt;
use object_store::ObjectStore;
use outflow_core::{
    ChangeEvent, ColumnSchema, DataType, EventBatch, EventKind, SchemaVersion, Sink,
    SourcePosition, TableId, TableSchema, Value,
};
use outflow_interchange::RecordStage;
use outflow_interchange::transforms::TransformChain;
use outflow_lake::{LakeSink, LakeSinkConfig};
use outflow_postgres::position::{Lsn, PgPosition};
use outflow_testkit::{s3, unique_name};

use crate::{field, formatter, props};

fn table() -> Arc<TableSchema> {
    Arc::new(
        TableSchema::new(
            TableId::new("public", "blobs"),
            SchemaVersion(1),
            vec![
                ColumnSchema::new("id", DataType::Int32, false),
                ColumnSchema::new("body", DataType::String { length: None }, true),
            ],
            &["id"],
        )
        .unwrap(),
    )
}

fn insert(table: &Arc<TableSchema>, n: u64, body_len: usize) -> ChangeEvent {
    ChangeEvent {
        position: SourcePosition::from(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(5000 + n),
            lsn: Lsn(5000 + n),
            seq: 0,
            tx_id: None,
            snapshot: false,
        }),
        source_ts_us: Some(1_714_557_600_000_000),
        kind: EventKind::Insert {
            table: Arc::clone(table),
            after: vec![
                Value::Int32(i32::try_from(n).unwrap()),
                Value::String("x".repeat(body_len)),
            ],
        },
    }
}

fn store_props(bucket: &str, staging: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("lake.path".into(), format!("s3://{bucket}/raw")),
        ("lake.staging.dir".into(), staging.to_str().unwrap().into()),
        ("lake.store.aws_endpoint".into(), s3().endpoint()),
        ("lake.store.aws_allow_http".into(), "true".into()),
        ("lake.store.aws_region".into(), "us-east-1".into()),
        ("lake.store.aws_access_key_id".into(), "outflow".into()),
        (
            "lake.store.aws_secret_access_key".into(),
            "outflow-secret".into(),
        ),
        ("lake.compression".into(), "null".into()),
    ]
}

async fn sink(
    bucket: &str,
    staging: &std::path::Path,
    committed: Option<SourcePosition>,
) -> RecordStage<LakeSink> {
    let pairs = store_props(bucket, staging);
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    RecordStage::new(
        formatter("shop"),
        TransformChain::default(),
        LakeSink::start(
            LakeSinkConfig::from_properties("blobs-s3", &props(&refs)).unwrap(),
            committed,
        )
        .await
        .unwrap(),
    )
}

/// A client of the same bucket, outside the sink.
fn client(bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(s3().endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("reader")
            .with_secret_access_key("reader")
            .build()
            .unwrap(),
    )
}

async fn objects(store: &Arc<dyn ObjectStore>) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = store
        .list(None)
        .map(|m| {
            let m = m.unwrap();
            (m.location.to_string(), usize::try_from(m.size).unwrap())
        })
        .collect()
        .await;
    out.sort();
    out
}

async fn ids_in(store: &Arc<dyn ObjectStore>, data: &[(String, usize)]) -> Vec<i64> {
    let mut ids = Vec::new();
    for (key, _) in data {
        let bytes = store
            .get(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        for record in apache_avro::Reader::new(&bytes[..]).unwrap() {
            match field(field(&record.unwrap(), "after"), "id") {
                apache_avro::types::Value::Int(id) => ids.push(i64::from(*id)),
                other => panic!("{other:?}"),
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_uploaded_at_each_roll_and_recovery_deletes_objects_past_the_offset() {
    let bucket = unique_name("lake").replace('_', "-");
    s3().create_bucket(&bucket);
    let staging = tempfile::tempdir().unwrap();
    let store = client(&bucket);
    let blobs = table();
    {
        let mut lake = sink(&bucket, staging.path(), None).await;
        // Roll 1: a small file. Roll 2: a ~10 MiB file (multipart upload).
        let h = lake
            .write(EventBatch::new(
                (1..=3).map(|n| insert(&blobs, n, 10)).collect(),
            ))
            .await
            .unwrap();
        lake.flush().await.unwrap();
        h.wait().await.unwrap();
        let h = lake
            .write(EventBatch::new(
                (4..=2503).map(|n| insert(&blobs, n, 4096)).collect(),
            ))
            .await
            .unwrap();
        lake.flush().await.unwrap();
        h.wait().await.unwrap();
        // Staged, never uploaded (the process dies here).
        let _h = lake
            .write(EventBatch::new(vec![insert(&blobs, 2504, 10)]))
            .await
            .unwrap();
        std::mem::forget(lake);
    }
    let listed = objects(&store).await;
    let data: Vec<_> = listed
        .iter()
        .filter(|(k, _)| k.ends_with(".avro"))
        .cloned()
        .collect();
    assert_eq!(data.len(), 2, "{listed:?}");
    assert!(
        data.iter()
            .all(|(k, _)| k.starts_with("raw/shop.public.blobs/date=2024-05-01/hour=10/blobs-s3+"))
    );
    assert!(data.iter().any(|(_, size)| *size > 10 << 20), "{data:?}");
    assert!(
        listed
            .iter()
            .any(|(k, _)| k.starts_with("raw/_schemas/shop.public.blobs/")),
        "{listed:?}"
    );
    assert_eq!(ids_in(&store, &data).await, (1..=2503).collect::<Vec<_>>());

    // The offset store only has roll 1 (the crash came before roll 2's commit): the big
    // object and the staged leftovers go; the source resends 4..
    let committed = insert(&blobs, 3, 0).position;
    let mut lake = sink(&bucket, staging.path(), Some(committed)).await;
    let left: Vec<_> = objects(&store)
        .await
        .into_iter()
        .filter(|(k, _)| k.ends_with(".avro"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        outflow_lake::layout::walk(staging.path())
            .unwrap()
            .iter()
            .all(|p| p.to_string_lossy().contains("_schemas")),
        "staged leftovers removed"
    );
    let h = lake
        .write(EventBatch::new(
            (4..=10).map(|n| insert(&blobs, n, 10)).collect(),
        ))
        .await
        .unwrap();
    lake.flush().await.unwrap();
    h.wait().await.unwrap();
    let data: Vec<_> = objects(&store)
        .await
        .into_iter()
        .filter(|(k, _)| k.ends_with(".avro"))
        .collect();
    assert_eq!(ids_in(&store, &data).await, (1..=10).collect::<Vec<_>>());
    // Nothing stays staged after a roll.
    assert!(
        outflow_lake::layout::walk(staging.path())
            .unwrap()
            .iter()
            .all(|p| p.to_string_lossy().contains("_schemas")),
    );
}
