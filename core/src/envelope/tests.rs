//! Golden tests: records and schemas against Debezium's documented and observed output.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::encoding::{avro, json};
use crate::event::{BinlogDetail, SnapshotMark, TransactionBoundary};
use crate::position::{BinlogPosition, PgPosition};
use crate::schema::{ColumnSchema, DataType};

fn config(flavor: ConnectorFlavor, extra: &[(&str, &str)]) -> EnvelopeConfig {
    let mut props: BTreeMap<String, String> =
        [("topic.prefix", "demo"), ("database.dbname", "shop")]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
    for (k, v) in extra {
        props.insert((*k).into(), (*v).into());
    }
    EnvelopeConfig::from_properties(flavor, &props).unwrap()
}

fn users() -> Arc<TableSchema> {
    let ts = DataType::Timestamp { precision: Some(6) };
    Arc::new(
        TableSchema::new(
            TableId::new("public", "users"),
            SchemaVersion::FIRST,
            vec![
                ColumnSchema::new("id", DataType::Int32, false),
                ColumnSchema::new("user_id", DataType::String { length: None }, false),
                ColumnSchema::new("email", DataType::String { length: None }, true),
                ColumnSchema::new("country", DataType::String { length: None }, true),
                ColumnSchema::new("created_at", ts.clone(), true),
                ColumnSchema::new("updated_at", ts, true),
            ],
            &["id"],
        )
        .unwrap(),
    )
}

fn pg(lsn: u64, seq: u64) -> SourcePosition {
    SourcePosition::Postgres(PgPosition {
        lsn_commit: Lsn(lsn + 100),
        lsn: Lsn(lsn),
        seq,
        tx_id: Some(571),
        snapshot: false,
    })
}

fn row(id: i32) -> Row {
    vec![
        Value::Int32(id),
        Value::String(format!("u{id}")),
        Value::Null,
        Value::String("NL".into()),
        Value::Timestamp(1_700_000_000_123_456),
        Value::Null,
    ]
}

fn event(position: SourcePosition, kind: EventKind) -> ChangeEvent {
    ChangeEvent {
        position,
        source_ts_us: Some(1_740_218_268_517_360),
        kind,
        binlog: None,
    }
}

const SNAPSHOT_ALLOWED: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

/// Debezium 3.0.x's registered schema for `demo.public.users` (observed in the wild),
/// with the two 3.1 changes (source `connect.version` 1, seven snapshot values) and
/// without column defaults (this table has none).
fn expected_postgres_value_schema() -> String {
    let micro = r#"["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}]"#;
    format!(
        concat!(
            r#"{{"type":"record","name":"Envelope","namespace":"demo.public.users","fields":["#,
            r#"{{"name":"before","type":["null",{{"type":"record","name":"Value","fields":["#,
            r#"{{"name":"id","type":"int"}},{{"name":"user_id","type":"string"}},"#,
            r#"{{"name":"email","type":["null","string"],"default":null}},"#,
            r#"{{"name":"country","type":["null","string"],"default":null}},"#,
            r#"{{"name":"created_at","type":{micro},"default":null}},"#,
            r#"{{"name":"updated_at","type":{micro},"default":null}}],"connect.name":"demo.public.users.Value"}}],"default":null}},"#,
            r#"{{"name":"after","type":["null","Value"],"default":null}},"#,
            r#"{{"name":"source","type":{{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":["#,
            r#"{{"name":"version","type":"string"}},{{"name":"connector","type":"string"}},{{"name":"name","type":"string"}},"#,
            r#"{{"name":"ts_ms","type":"long"}},"#,
            r#"{{"name":"snapshot","type":[{{"type":"string","connect.version":1,"connect.parameters":{{"allowed":"{allowed}"}},"connect.default":"false","connect.name":"io.debezium.data.Enum"}},"null"],"default":"false"}},"#,
            r#"{{"name":"db","type":"string"}},{{"name":"sequence","type":["null","string"],"default":null}},"#,
            r#"{{"name":"ts_us","type":["null","long"],"default":null}},{{"name":"ts_ns","type":["null","long"],"default":null}},"#,
            r#"{{"name":"schema","type":"string"}},{{"name":"table","type":"string"}},"#,
            r#"{{"name":"txId","type":["null","long"],"default":null}},{{"name":"lsn","type":["null","long"],"default":null}},"#,
            r#"{{"name":"xmin","type":["null","long"],"default":null}}],"connect.version":1,"connect.name":"io.debezium.connector.postgresql.Source"}}}},"#,
            r#"{{"name":"transaction","type":["null",{{"type":"record","name":"block","namespace":"event","fields":["#,
            r#"{{"name":"id","type":"string"}},{{"name":"total_order","type":"long"}},{{"name":"data_collection_order","type":"long"}}],"#,
            r#""connect.version":1,"connect.name":"event.block"}}],"default":null}},"#,
            r#"{{"name":"op","type":"string"}},{{"name":"ts_ms","type":["null","long"],"default":null}},"#,
            r#"{{"name":"ts_us","type":["null","long"],"default":null}},{{"name":"ts_ns","type":["null","long"],"default":null}}],"#,
            r#""connect.version":2,"connect.name":"demo.public.users.Envelope"}}"#
        ),
        micro = micro,
        allowed = SNAPSHOT_ALLOWED
    )
}

#[test]
fn postgres_value_schema_matches_debezium() {
    let mut f = EnvelopeFormatter::new(config(ConnectorFlavor::Postgres, &[]));
    let mut out = Vec::new();
    f.format(
        &event(
            pg(1000, 1),
            EventKind::Insert {
                table: users(),
                after: row(1),
            },
        ),
        5_000_000,
        &mut out,
    )
    .unwrap();
    let record = &out[0];
    assert_eq!(&*record.topic, "demo.public.users");
    let value = record.value.as_ref().unwrap();
    assert_eq!(
        avro::avro_schema(&value.schema),
        expected_postgres_value_schema()
    );
    let key = record.key.as_ref().unwrap();
    assert_eq!(
        avro::avro_schema(&key.schema),
        r#"{"type":"record","name":"Key","namespace":"demo.public.users","fields":[{"name":"id","type":"int"}],"connect.name":"demo.public.users.Key"}"#
    );
}

#[test]
fn postgres_insert_as_json_without_schema() {
    let mut f = EnvelopeFormatter::new(config(ConnectorFlavor::Postgres, &[]));
    let mut out = Vec::new();
    // A previous commit sets the first element of `sequence`.
    f.format(
        &event(
            pg(900, 9),
            EventKind::Commit(TransactionBoundary {
                id: "570:800".into(),
                event_count: 1,
            }),
        ),
        0,
        &mut out,
    )
    .unwrap();
    f.format(
        &event(
            pg(1000, 1),
            EventKind::Insert {
                table: users(),
                after: row(1),
            },
        ),
        1_740_218_269_000_001,
        &mut out,
    )
    .unwrap();
    let value = out[0].value.as_ref().unwrap();
    let bytes = json::encode(&value.schema, Some(&value.datum), false)
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        concat!(
            r#"{"before":null,"after":{"id":1,"user_id":"u1","email":null,"country":"NL","created_at":1700000000123456,"updated_at":null},"#,
            r#""source":{"version":""#,
            env!("CARGO_PKG_VERSION"),
            r#"-outflow","connector":"postgresql","name":"demo","ts_ms":1740218268517,"snapshot":"false","db":"shop","#,
            r#""sequence":"[\"1000\",\"1000\"]","ts_us":1740218268517360,"ts_ns":1740218268517360000,"schema":"public","table":"users","#,
            r#""txId":571,"lsn":1000,"xmin":null},"transaction":null,"op":"c","ts_ms":1740218269000,"ts_us":1740218269000001,"ts_ns":1740218269000001000}"#
        )
    );
    let key = out[0].key.as_ref().unwrap();
    assert_eq!(
        json::encode(&key.schema, Some(&key.datum), false)
            .unwrap()
            .unwrap(),
        br#"{"id":1}"#
    );
}

#[test]
fn delete_then_tombstone_and_truncate_only_when_not_skipped() {
    let mut f = EnvelopeFormatter::new(config(ConnectorFlavor::Postgres, &[]));
    let mut out = Vec::new();
    f.format(
        &event(
            pg(1000, 1),
            EventKind::Delete {
                table: users(),
                before: row(7),
            },
        ),
        0,
        &mut out,
    )
    .unwrap();
    f.format(
        &event(
            pg(1000, 2),
            EventKind::Truncate {
                tables: vec![users()],
            },
        ),
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out.len(),
        2,
        "delete + tombstone; truncate skipped by default"
    );
    assert_eq!(out[1].kind, RecordKind::Tombstone);
    assert!(out[1].value.is_none());
    assert_eq!(out[1].key, out[0].key);

    let mut f = EnvelopeFormatter::new(config(
        ConnectorFlavor::Postgres,
        &[
            ("skipped.operations", "none"),
            ("tombstones.on.delete", "false"),
        ],
    ));
    let mut out = Vec::new();
    f.format(
        &event(
            pg(1000, 1),
            EventKind::Delete {
                table: users(),
                before: row(7),
            },
        ),
        0,
        &mut out,
    )
    .unwrap();
    f.format(
        &event(
            pg(1000, 2),
            EventKind::Truncate {
                tables: vec![users()],
            },
        ),
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 2);
    assert!(out[1].key.is_none());
    let Some(Payload {
        datum: Datum::Struct(fields),
        ..
    }) = &out[1].value
    else {
        panic!()
    };
    assert_eq!(fields[4].as_str(), Some("t"));
    assert_eq!((fields[0].is_null(), fields[1].is_null()), (true, true));
}

#[test]
fn transaction_metadata_counts_per_table() {
    let mut f = EnvelopeFormatter::new(config(
        ConnectorFlavor::Postgres,
        &[("provide.transaction.metadata", "true")],
    ));
    let mut out = Vec::new();
    let tx = TransactionBoundary {
        id: "571:1100".into(),
        event_count: 0,
    };
    f.format(
        &event(pg(1000, 0), EventKind::Begin(tx.clone())),
        0,
        &mut out,
    )
    .unwrap();
    for seq in 1..=2 {
        f.format(
            &event(
                pg(1000, seq),
                EventKind::Insert {
                    table: users(),
                    after: row(seq as i32),
                },
            ),
            0,
            &mut out,
        )
        .unwrap();
    }
    f.format(
        &event(
            pg(1000, 3),
            EventKind::Commit(TransactionBoundary {
                event_count: 2,
                ..tx
            }),
        ),
        0,
        &mut out,
    )
    .unwrap();
    let kinds: Vec<RecordKind> = out.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RecordKind::TransactionMetadata,
            RecordKind::Change,
            RecordKind::Change,
            RecordKind::TransactionMetadata
        ]
    );
    assert_eq!(&*out[0].topic, "demo.transaction");
    let end = out[3].value.as_ref().unwrap();
    let text = String::from_utf8(
        json::encode(&end.schema, Some(&end.datum), false)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        text,
        r#"{"status":"END","id":"571:1100","event_count":2,"data_collections":[{"data_collection":"public.users","event_count":2}],"ts_ms":1740218268517}"#
    );
    let second = out[2].value.as_ref().unwrap();
    let Datum::Struct(fields) = &second.datum else {
        panic!()
    };
    assert_eq!(
        fields[3],
        Datum::Struct(vec![
            Datum::String("571:1100".into()),
            Datum::Int64(2),
            Datum::Int64(2)
        ])
    );
}

#[test]
fn mariadb_source_block_and_snapshot_marker() {
    let mut f = EnvelopeFormatter::new(config(ConnectorFlavor::MariaDb, &[]));
    let table = Arc::new(
        TableSchema::new(
            TableId::new("inventory", "items"),
            SchemaVersion::FIRST,
            vec![
                ColumnSchema::new("id", DataType::Int64, false),
                ColumnSchema::new("flag", DataType::Int16, true),
            ],
            &["id"],
        )
        .unwrap(),
    );
    let position = SourcePosition::Binlog(BinlogPosition {
        file: "binlog.000003".into(),
        pos: 4321,
        event: 2,
        row: 1,
        gtid: Some("0-1-37".into()),
        gtid_set: None,
        snapshot: false,
    });
    let mut e = event(
        position,
        EventKind::Insert {
            table: Arc::clone(&table),
            after: vec![Value::Int64(5), Value::Null],
        },
    );
    e.binlog = Some(Arc::new(BinlogDetail {
        server_id: 1,
        thread: Some(9),
        query: None,
    }));
    let mut out = Vec::new();
    f.format(&e, 0, &mut out).unwrap();
    let value = out[0].value.as_ref().unwrap();
    let text = String::from_utf8(
        json::encode(&value.schema, Some(&value.datum), true)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(
        text.contains(
            r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},"#
        ),
        "{text}"
    );
    assert!(text.contains(r#""optional":false,"name":"io.debezium.connector.mariadb.Source","version":1,"field":"source"}"#), "{text}");
    assert!(
        text.contains(r#"{"type":"int16","optional":true,"field":"flag"}"#),
        "{text}"
    );
    assert!(text.contains(r#""table":"items","server_id":1,"gtid":"0-1-37","file":"binlog.000003","pos":4321,"row":1,"thread":9,"query":null}"#), "{text}");
    assert!(
        text.contains(r#""db":"inventory","sequence":null"#),
        "{text}"
    );

    let read = EventKind::Read {
        table,
        after: vec![Value::Int64(1), Value::Int16(0)],
        mark: SnapshotMark::Last,
    };
    let snapshot_position = SourcePosition::Binlog(BinlogPosition {
        file: "binlog.000003".into(),
        pos: 4000,
        event: 0,
        row: 0,
        gtid: None,
        gtid_set: None,
        snapshot: true,
    });
    let mut out = Vec::new();
    f.format(&event(snapshot_position, read), 0, &mut out)
        .unwrap();
    let value = out[0].value.as_ref().unwrap();
    // Encodes cleanly against the MariaDB schema.
    assert!(json::encode(&value.schema, Some(&value.datum), false).is_ok());
    let mut bytes = Vec::new();
    avro::encode(&value.schema, &value.datum, &mut bytes).unwrap();
    let Some(Payload {
        datum: Datum::Struct(fields),
        ..
    }) = &out[0].value
    else {
        panic!()
    };
    let Datum::Struct(source) = &fields[2] else {
        panic!()
    };
    assert_eq!(source[4].as_str(), Some("last"));
    assert_eq!(fields[4].as_str(), Some("r"));
}

#[test]
fn heartbeat_record() {
    let mut f = EnvelopeFormatter::new(config(ConnectorFlavor::Postgres, &[]));
    let mut out = Vec::new();
    f.format(&event(pg(1, 1), EventKind::Heartbeat), 1_000_000, &mut out)
        .unwrap();
    assert_eq!(&*out[0].topic, "__debezium-heartbeat.demo");
    let key = out[0].key.as_ref().unwrap();
    assert_eq!(
        json::encode(&key.schema, Some(&key.datum), false)
            .unwrap()
            .unwrap(),
        br#"{"serverName":"demo"}"#
    );
    let value = out[0].value.as_ref().unwrap();
    assert_eq!(
        json::encode(&value.schema, Some(&value.datum), false)
            .unwrap()
            .unwrap(),
        br#"{"ts_ms":1000}"#
    );
}

#[test]
fn bad_rows_are_errors() {
    let mut f = EnvelopeFormatter::new(config(ConnectorFlavor::Postgres, &[]));
    let mut out = Vec::new();
    let short = EventKind::Insert {
        table: users(),
        after: vec![Value::Int32(1)],
    };
    assert!(matches!(
        f.format(&event(pg(1, 1), short), 0, &mut out),
        Err(EnvelopeError::RowShape { .. })
    ));
    let mut wrong = row(1);
    wrong[0] = Value::String("one".into());
    let err = f
        .format(
            &event(
                pg(1, 2),
                EventKind::Insert {
                    table: users(),
                    after: wrong,
                },
            ),
            0,
            &mut out,
        )
        .unwrap_err();
    assert!(err.to_string().contains("column id"), "{err}");
}

#[test]
fn column_rules_shape_the_records() {
    let mut f = EnvelopeFormatter::new(config(
        ConnectorFlavor::Postgres,
        &[
            (
                "column.exclude.list",
                "public.users.(created_at|updated_at)",
            ),
            ("column.mask.with.4.chars", "public.users.user_id"),
            ("column.truncate.to.1.chars", "public.users.country"),
            ("message.key.columns", "public.users:user_id"),
        ],
    ));
    let mut out = Vec::new();
    f.format(
        &event(
            pg(1000, 1),
            EventKind::Insert {
                table: users(),
                after: row(1),
            },
        ),
        0,
        &mut out,
    )
    .unwrap();
    let value = out[0].value.as_ref().unwrap();
    let Datum::Struct(fields) = &value.datum else {
        panic!()
    };
    let after = &fields[1];
    let text = {
        let mut s = String::new();
        json::write_value(&mut s, &value.schema.fields()[1].schema, after).unwrap();
        s
    };
    assert_eq!(
        text,
        r#"{"id":1,"user_id":"****","email":null,"country":"N"}"#
    );
    let key = out[0].key.as_ref().unwrap();
    // The key is the configured column, unmasked (masks apply to the value).
    assert_eq!(
        json::encode(&key.schema, Some(&key.datum), false)
            .unwrap()
            .unwrap(),
        br#"{"user_id":"u1"}"#
    );
}

#[test]
fn avro_name_adjustment_for_prefixes_avro_rejects() {
    let props: BTreeMap<String, String> = [
        ("topic.prefix", "my-server"),
        ("schema.name.adjustment.mode", "avro"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    let mut f = EnvelopeFormatter::new(
        EnvelopeConfig::from_properties(ConnectorFlavor::Postgres, &props).unwrap(),
    );
    let mut out = Vec::new();
    f.format(
        &event(
            pg(1000, 1),
            EventKind::Insert {
                table: users(),
                after: row(1),
            },
        ),
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        &*out[0].topic, "my-server.public.users",
        "topics keep the prefix"
    );
    let value = out[0].value.as_ref().unwrap();
    assert_eq!(
        value.schema.name.as_deref(),
        Some("my_server.public.users.Envelope")
    );
}
