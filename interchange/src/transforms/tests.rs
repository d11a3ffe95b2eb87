use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::encoding::json;
use crate::envelope::{EnvelopeConfig, EnvelopeFormatter};
use outflow_core::event::{ChangeEvent, EventKind};
use outflow_core::position::SourcePosition;
use outflow_core::schema::{ColumnSchema, DataType, SchemaVersion, TableId, TableSchema};
use outflow_core::value::Value;
use outflow_postgres::position::{Lsn, PgPosition};
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

fn table(name: &str) -> Arc<TableSchema> {
    let text = DataType::String { length: None };
    Arc::new(
        TableSchema::new(
            TableId::new("public", name),
            SchemaVersion::FIRST,
            vec![
                ColumnSchema::new("id", DataType::Int32, false),
                ColumnSchema::new("name", text, true),
            ],
            &["id"],
        )
        .unwrap(),
    )
}

fn records(kind: EventKind) -> Vec<Record> {
    let config = EnvelopeConfig::from_properties(
        &POSTGRES_SOURCE_BLOCK,
        &props(&[("topic.prefix", "demo")]),
    )
    .unwrap();
    let mut f = EnvelopeFormatter::new(config);
    let event = ChangeEvent {
        position: SourcePosition::from(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(9),
            lsn: Lsn(8),
            seq: 1,
            tx_id: Some(3),
            snapshot: false,
        }),
        source_ts_us: Some(1_000_000),
        kind,
    };
    let mut out = Vec::new();
    f.format(&event, 2_000_000, &mut out).unwrap();
    out
}

fn row(id: i32, name: &str) -> Vec<Value> {
    vec![Value::Int32(id), Value::String(name.into())]
}

fn run(chain: &mut TransformChain, input: Vec<Record>) -> Vec<Record> {
    let mut out = Vec::new();
    for r in input {
        chain.apply(r, &mut out);
    }
    out
}

fn value_json(record: &Record) -> String {
    let value = record.value.as_ref().unwrap();
    String::from_utf8(
        json::encode(&value.schema, Some(&value.datum), false)
            .unwrap()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn unwrap_defaults_keep_only_the_new_state() {
    let mut chain = TransformChain::from_properties(&props(&[
        ("transforms", "unwrap"),
        (
            "transforms.unwrap.type",
            "io.debezium.transforms.ExtractNewRecordState",
        ),
    ]))
    .unwrap();
    let t = table("users");
    let out = run(
        &mut chain,
        records(EventKind::Insert {
            table: Arc::clone(&t),
            after: row(1, "a"),
        }),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(value_json(&out[0]), r#"{"id":1,"name":"a"}"#);
    // Delete and its tombstone are both dropped by default.
    let out = run(
        &mut chain,
        records(EventKind::Delete {
            table: t,
            before: row(1, "a"),
        }),
    );
    assert!(out.is_empty(), "{out:?}");
    // Records that are not change events pass untouched.
    let out = run(&mut chain, records(EventKind::Heartbeat));
    assert_eq!(out.len(), 1);
}

#[test]
fn unwrap_rewrite_with_added_fields_and_headers() {
    let mut chain = TransformChain::from_properties(&props(&[
        ("transforms", "unwrap"),
        (
            "transforms.unwrap.type",
            "io.debezium.transforms.ExtractNewRecordState",
        ),
        (
            "transforms.unwrap.delete.tombstone.handling.mode",
            "rewrite",
        ),
        ("transforms.unwrap.add.fields", "op,table,source.ts_ms"),
        ("transforms.unwrap.add.headers", "op"),
    ]))
    .unwrap();
    let t = table("users");
    let inserted = run(
        &mut chain,
        records(EventKind::Insert {
            table: Arc::clone(&t),
            after: row(1, "a"),
        }),
    );
    assert_eq!(
        value_json(&inserted[0]),
        r#"{"id":1,"name":"a","__deleted":"false","__op":"c","__table":"users","__source_ts_ms":1000}"#
    );
    assert_eq!(
        inserted[0].headers,
        vec![("__op".to_owned(), "c".to_owned())]
    );
    let deleted = run(
        &mut chain,
        records(EventKind::Delete {
            table: t,
            before: row(1, "a"),
        }),
    );
    assert_eq!(
        deleted.len(),
        1,
        "rewrite keeps the delete, drops the tombstone"
    );
    assert_eq!(
        value_json(&deleted[0]),
        r#"{"id":1,"name":"a","__deleted":"true","__op":"d","__table":"users","__source_ts_ms":1000}"#
    );
    let a = &inserted[0].value.as_ref().unwrap().schema;
    let b = &deleted[0].value.as_ref().unwrap().schema;
    assert_eq!(a, b, "one derived schema for inserts and deletes");
}

#[test]
fn unwrap_delete_to_tombstone() {
    let mut chain = TransformChain::from_properties(&props(&[
        ("transforms", "unwrap"),
        (
            "transforms.unwrap.type",
            "io.debezium.transforms.ExtractNewRecordState",
        ),
        (
            "transforms.unwrap.delete.tombstone.handling.mode",
            "delete-to-tombstone",
        ),
    ]))
    .unwrap();
    let out = run(
        &mut chain,
        records(EventKind::Delete {
            table: table("users"),
            before: row(1, "a"),
        }),
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].value.is_none());
    assert!(out[0].key.is_some());
}

#[test]
fn routers() {
    let mut chain = TransformChain::from_properties(&props(&[
        ("transforms", "route"),
        (
            "transforms.route.type",
            "org.apache.kafka.connect.transforms.RegexRouter",
        ),
        ("transforms.route.regex", "demo\\.public\\.(.*)"),
        ("transforms.route.replacement", "cdc.$1"),
    ]))
    .unwrap();
    let out = run(
        &mut chain,
        records(EventKind::Insert {
            table: table("users"),
            after: row(1, "a"),
        }),
    );
    assert_eq!(&*out[0].topic, "cdc.users");

    let mut chain = TransformChain::from_properties(&props(&[
        ("transforms", "shards"),
        (
            "transforms.shards.type",
            "io.debezium.transforms.ByLogicalTableRouter",
        ),
        (
            "transforms.shards.topic.regex",
            "demo\\.public\\.users_(\\d+)",
        ),
        ("transforms.shards.topic.replacement", "demo.public.users"),
    ]))
    .unwrap();
    let out = run(
        &mut chain,
        records(EventKind::Insert {
            table: table("users_7"),
            after: row(1, "a"),
        }),
    );
    assert_eq!(&*out[0].topic, "demo.public.users");
    let key = out[0].key.as_ref().unwrap();
    assert_eq!(key.schema.name.as_deref(), Some("demo.public.users.Key"));
    assert_eq!(
        json::encode(&key.schema, Some(&key.datum), false)
            .unwrap()
            .unwrap(),
        br#"{"id":1,"__dbz__physicalTableIdentifier":"demo.public.users_7"}"#
    );
    let value = out[0].value.as_ref().unwrap();
    assert_eq!(
        value.schema.name.as_deref(),
        Some("demo.public.users.Envelope")
    );
    assert_eq!(
        value.schema.fields()[1].schema.name.as_deref(),
        Some("demo.public.users.Value")
    );
}

#[test]
fn filter_by_operation_and_table() {
    let mut chain = TransformChain::from_properties(&props(&[
        ("transforms", "onlyUsers,noDeletes"),
        (
            "transforms.onlyUsers.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.onlyUsers.predicate", "isUsers"),
        ("transforms.onlyUsers.negate", "true"),
        (
            "transforms.noDeletes.type",
            "org.apache.kafka.connect.transforms.Filter",
        ),
        ("transforms.noDeletes.predicate", "isDelete"),
        ("predicates", "isUsers,isDelete"),
        (
            "predicates.isUsers.type",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        ),
        ("predicates.isUsers.pattern", ".*\\.users"),
        (
            "predicates.isDelete.type",
            "io.outflow.predicates.OperationIs",
        ),
        ("predicates.isDelete.ops", "d"),
    ]))
    .unwrap();
    assert_eq!(
        run(
            &mut chain,
            records(EventKind::Insert {
                table: table("users"),
                after: row(1, "a")
            })
        )
        .len(),
        1
    );
    assert!(
        run(
            &mut chain,
            records(EventKind::Insert {
                table: table("orders"),
                after: row(1, "a")
            })
        )
        .is_empty()
    );
    let out = run(
        &mut chain,
        records(EventKind::Delete {
            table: table("users"),
            before: row(1, "a"),
        }),
    );
    assert_eq!(
        out.len(),
        1,
        "the delete is dropped, its tombstone (no op) passes"
    );
    assert!(out[0].value.is_none());
}

#[test]
fn outbox_event_router() {
    let text = DataType::String { length: None };
    let outbox = Arc::new(
        TableSchema::new(
            TableId::new("public", "outbox"),
            SchemaVersion::FIRST,
            vec![
                ColumnSchema::new("id", DataType::Uuid, false),
                ColumnSchema::new("aggregatetype", text.clone(), false),
                ColumnSchema::new("aggregateid", text.clone(), false),
                ColumnSchema::new("type", text, false),
                ColumnSchema::new("payload", DataType::Json, true),
            ],
            &["id"],
        )
        .unwrap(),
    );
    let mut chain = TransformChain::from_properties(&props(&[
        ("transforms", "outbox"),
        (
            "transforms.outbox.type",
            "io.debezium.transforms.outbox.EventRouter",
        ),
        (
            "transforms.outbox.table.fields.additional.placement",
            "type:header:eventType",
        ),
    ]))
    .unwrap();
    let after = vec![
        Value::Uuid([1; 16]),
        Value::String("order".into()),
        Value::String("o-42".into()),
        Value::String("OrderCreated".into()),
        Value::Json(r#"{"total":3}"#.into()),
    ];
    let out = run(
        &mut chain,
        records(EventKind::Insert {
            table: Arc::clone(&outbox),
            after: after.clone(),
        }),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].topic, "outbox.event.order");
    assert_eq!(out[0].key.as_ref().unwrap().datum.as_str(), Some("o-42"));
    assert_eq!(
        out[0].value.as_ref().unwrap().datum.as_str(),
        Some(r#"{"total":3}"#)
    );
    assert_eq!(
        out[0].headers,
        vec![
            (
                "id".to_owned(),
                "01010101-0101-0101-0101-010101010101".to_owned()
            ),
            ("eventType".to_owned(), "OrderCreated".to_owned())
        ]
    );
    // Deleting outbox rows (housekeeping) publishes nothing.
    assert!(
        run(
            &mut chain,
            records(EventKind::Delete {
                table: outbox,
                before: after
            })
        )
        .is_empty()
    );
}

#[test]
fn bad_config_names_the_property() {
    for (pairs, property) in [
        (vec![("transforms", "x")], "transforms.x.type"),
        (
            vec![("transforms", "x"), ("transforms.x.type", "com.acme.Magic")],
            "transforms.x.type",
        ),
        (
            vec![
                ("transforms", "x"),
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.RegexRouter",
                ),
                ("transforms.x.regex", "("),
            ],
            "transforms.x.regex",
        ),
        (
            vec![
                ("transforms", "x"),
                (
                    "transforms.x.type",
                    "io.debezium.transforms.ExtractNewRecordState",
                ),
                ("transforms.x.delete.tombstone.handling.mode", "explode"),
            ],
            "transforms.x.delete.tombstone.handling.mode",
        ),
        (
            vec![
                ("transforms", "x"),
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.Filter",
                ),
                ("transforms.x.predicate", "p"),
            ],
            "transforms.x.predicate",
        ),
    ] {
        let err = TransformChain::from_properties(&props(&pairs)).unwrap_err();
        assert_eq!(err.property, property, "{err}");
    }
}
