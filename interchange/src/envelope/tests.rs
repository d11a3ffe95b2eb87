//! Golden tests: records and schemas against Debezium's documented and observed output.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::encoding::{avro, json};
use outflow_core::event::{SnapshotMark, TransactionBoundary};
use outflow_core::schema::{ColumnSchema, DataType};
use outflow_mysql::position::{BinlogPlace, BinlogPosition};
use outflow_mysql::source_block::{MARIADB_SOURCE_BLOCK, MYSQL_SOURCE_BLOCK};
use outflow_postgres::position::{Lsn, PgPosition};
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;

fn config(
    flavor: &'static dyn outflow_core::SourceBlock,
    extra: &[(&str, &str)],
) -> EnvelopeConfig {
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

/// The table behind a Debezium 3.0 registry schema observed in the wild: `id` and the
/// timestamps have declared defaults.
fn users() -> Arc<TableSchema> {
    let ts = DataType::Timestamp { precision: Some(6) };
    let with_default = |mut c: ColumnSchema, v: Value| {
        c.default = Some(v);
        c
    };
    Arc::new(
        TableSchema::new(
            TableId::new("public", "users"),
            SchemaVersion::FIRST,
            vec![
                with_default(
                    ColumnSchema::new("id", DataType::Int32, false),
                    Value::Int32(0),
                ),
                ColumnSchema::new("user_id", DataType::String { length: None }, false),
                ColumnSchema::new("email", DataType::String { length: None }, true),
                ColumnSchema::new("country", DataType::String { length: None }, true),
                with_default(
                    ColumnSchema::new("created_at", ts.clone(), true),
                    Value::Timestamp(0),
                ),
                with_default(
                    ColumnSchema::new("updated_at", ts, true),
                    Value::Timestamp(0),
                ),
            ],
            &["id"],
        )
        .unwrap(),
    )
}

fn pg(lsn: u64, seq: u64) -> SourcePosition {
    SourcePosition::from(PgPosition {
        snapshot_cursor: None,
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
    }
}

const SNAPSHOT_ALLOWED: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

/// Debezium 3.0.x's registered schema for `demo.public.users` (observed in the wild),
/// with the two 3.1 changes (source `connect.version` 1, seven snapshot values).
fn expected_postgres_value_schema() -> String {
    let micro = r#"[{"type":"long","connect.version":1,"connect.default":0,"connect.name":"io.debezium.time.MicroTimestamp"},"null"]"#;
    format!(
        concat!(
            r#"{{"type":"record","name":"Envelope","namespace":"demo.public.users","fields":["#,
            r#"{{"name":"before","type":["null",{{"type":"record","name":"Value","fields":["#,
            r#"{{"name":"id","type":{{"type":"int","connect.default":0}},"default":0}},{{"name":"user_id","type":"string"}},"#,
            r#"{{"name":"email","type":["null","string"],"default":null}},"#,
            r#"{{"name":"country","type":["null","string"],"default":null}},"#,
            r#"{{"name":"created_at","type":{micro},"default":0}},"#,
            r#"{{"name":"updated_at","type":{micro},"default":0}}],"connect.name":"demo.public.users.Value"}}],"default":null}},"#,
            r#"{{"name":"after","type":["null","Value"],"default":null}},"#,
            r#"{{"name":"source","type":{{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":["#,
            r#"{{"name":"version","type":"string"}},{{"name":"connector","type":"string"}},{{"name":"name","type":"string"}},"#,
            r#"{{"name":"ts_ms","type":"long"}},"#,
            r#"{{"name":"snapshot","type":[{{"type":"string","connect.version":1,"connect.parameters":{{"allowed":"{allowed}"}},"connect.default":"false","connect.name":"io.debezium.data.Enum"}},"null"],"default":"false"}},"#,
            r#"{{"name":"db","type":"string"}},{{"name":"sequence","type":["null","string"],"default":null}},"#,
            r#"{{"name":"ts_us","type":["null","long"],"default":null}},{{"name":"ts_ns","type":["null","long"],"default":null}},"#,
            r#"{{"name":"schema","type":"string"}},{{"name":"table","type":"string"}},"#,
            r#"{{"name":"txId","type":["null","long"],"default":null}},{{"name":"lsn","type":["null","long"],"default":null}},"#,
            r#"{{"name":"xmin","type":["null","long"],"default":null}},"#,
            r#"{{"name":"origin","type":["null","string"],"default":null}},{{"name":"origin_lsn","type":["null","long"],"default":null}}],"connect.version":1,"connect.name":"io.debezium.connector.postgresql.Source"}}}},"#,
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
    let mut f = EnvelopeFormatter::new(config(&POSTGRES_SOURCE_BLOCK, &[]));
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
        r#"{"type":"record","name":"Key","namespace":"demo.public.users","fields":[{"name":"id","type":{"type":"int","connect.default":0},"default":0}],"connect.name":"demo.public.users.Key"}"#
    );
}

#[test]
fn postgres_insert_as_json_without_schema() {
    let mut f = EnvelopeFormatter::new(config(&POSTGRES_SOURCE_BLOCK, &[]));
    let mut out = Vec::new();
    // A previous commit sets the first element of `sequence`: the LSN its Commit
    // message stands at (the transaction's end).
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
            r#"{"before":null,"after":{"id":1,"user_id":"u1","email":null,"country":"NL","created_at":1700000000123456,"updated_at":0},"#,
            r#""source":{"version":""#,
            env!("CARGO_PKG_VERSION"),
            r#"-outflow","connector":"postgresql","name":"demo","ts_ms":1740218268517,"snapshot":"false","db":"shop","#,
            r#""sequence":"[\"900\",\"1000\"]","ts_us":1740218268517360,"ts_ns":1740218268517360000,"schema":"public","table":"users","#,
            r#""txId":571,"lsn":1000,"xmin":null,"origin":null,"origin_lsn":null},"transaction":null,"op":"c","ts_ms":1740218269000,"ts_us":1740218269000001,"ts_ns":1740218269000001000}"#
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
    let mut f = EnvelopeFormatter::new(config(&POSTGRES_SOURCE_BLOCK, &[]));
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
        &POSTGRES_SOURCE_BLOCK,
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
        &POSTGRES_SOURCE_BLOCK,
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
    // Each event names the transaction by its xid and the event's own LSN, as
    // Debezium's Postgres connector does.
    assert_eq!(
        fields[3],
        Datum::Struct(vec![
            Datum::String("571:1000".into()),
            Datum::Int64(2),
            Datum::Int64(2)
        ])
    );
}

#[test]
fn mariadb_source_block_and_snapshot_marker() {
    let mut f = EnvelopeFormatter::new(config(&MARIADB_SOURCE_BLOCK, &[]));
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
    let place = Arc::new(BinlogPlace {
        file: "binlog.000003".into(),
        gtid: Some("0-1-37".into()),
        server_id: 1,
        thread: Some(9),
        ..BinlogPlace::default()
    });
    let e = event(
        place.position(4321, 2, 1, false),
        EventKind::Insert {
            table: Arc::clone(&table),
            after: vec![Value::Int64(5), Value::Null],
        },
    );
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
    let snapshot_position = SourcePosition::from(BinlogPosition {
        file: "binlog.000003".into(),
        pos: 4000,
        event: 0,
        row: 0,
        gtid: None,
        gtid_set: None,
        snapshot: true,
        snapshot_reads: None,
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
    let mut f = EnvelopeFormatter::new(config(&POSTGRES_SOURCE_BLOCK, &[]));
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
    let mut f = EnvelopeFormatter::new(config(&POSTGRES_SOURCE_BLOCK, &[]));
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
        &POSTGRES_SOURCE_BLOCK,
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
        EnvelopeConfig::from_properties(&POSTGRES_SOURCE_BLOCK, &props).unwrap(),
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

/// The JsonConverter schema of one nullable column of this type.
fn column_json(
    data_type: DataType,
    flavor: &'static dyn outflow_core::SourceBlock,
    extra: &[(&str, &str)],
) -> String {
    let config = config(flavor, extra);
    let modes = types::TypeModes {
        decimal: config.decimal_mode,
        time: config.time_mode,
        binary: config.binary_mode,
        interval: config.interval_mode,
    };
    let mut schema = types::column_schema(&data_type, modes);
    schema.optional = true;
    let mut out = String::new();
    json::write_schema(&mut out, &schema, Some("c"));
    out
}

fn expect(kind: &str, rest: &str) -> String {
    format!(r#"{{"type":"{kind}","optional":true{rest},"field":"c"}}"#)
}

/// Every MySQL type, as the MySQL connector describes it, against Debezium's MySQL type
/// table (default `time.precision.mode=adaptive_time_microseconds`).
#[test]
fn mysql_type_mapping_matches_debezium() {
    let text = DataType::String { length: Some(20) };
    let dbz = |name: &str| format!(r#","name":"{name}","version":1"#);
    let cases: Vec<(&str, DataType, String)> = vec![
        ("BOOLEAN / BIT(1)", DataType::Bool, expect("boolean", "")),
        ("BIT(16)", DataType::Bits { length: 16 }, expect("bytes", &format!(r#"{},"parameters":{{"length":"16"}}"#, dbz("io.debezium.data.Bits")))),
        ("TINYINT", DataType::Int16, expect("int16", "")),
        ("SMALLINT UNSIGNED", DataType::Int32, expect("int32", "")),
        ("INT UNSIGNED", DataType::Int64, expect("int64", "")),
        ("FLOAT", DataType::Float32, expect("float", "")),
        ("DOUBLE", DataType::Float64, expect("double", "")),
        (
            "DECIMAL(10,2)",
            DataType::Decimal { precision: Some(10), scale: Some(2) },
            expect(
                "bytes",
                r#","name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"}"#,
            ),
        ),
        ("VARCHAR(20)", text, expect("string", "")),
        ("BLOB", DataType::Bytes { length: None }, expect("bytes", "")),
        ("JSON", DataType::Json, expect("string", &dbz("io.debezium.data.Json"))),
        (
            "ENUM('a','b')",
            DataType::Enum { labels: vec!["a".into(), "b".into()] },
            expect("string", &format!(r#"{},"parameters":{{"allowed":"a,b"}}"#, dbz("io.debezium.data.Enum"))),
        ),
        (
            "SET('x','y')",
            DataType::Set { labels: vec!["x".into(), "y".into()] },
            expect("string", &format!(r#"{},"parameters":{{"allowed":"x,y"}}"#, dbz("io.debezium.data.EnumSet"))),
        ),
        ("YEAR", DataType::Year, expect("int32", &dbz("io.debezium.time.Year"))),
        ("DATE", DataType::Date, expect("int32", &dbz("io.debezium.time.Date"))),
        ("TIME(0)", DataType::Time { precision: Some(0) }, expect("int64", &dbz("io.debezium.time.MicroTime"))),
        ("DATETIME", DataType::Timestamp { precision: Some(0) }, expect("int64", &dbz("io.debezium.time.Timestamp"))),
        ("DATETIME(6)", DataType::Timestamp { precision: Some(6) }, expect("int64", &dbz("io.debezium.time.MicroTimestamp"))),
        ("TIMESTAMP(3)", DataType::TimestampTz { precision: Some(3) }, expect("string", &dbz("io.debezium.time.ZonedTimestamp"))),
        (
            "GEOMETRY",
            DataType::Geometry { geography: false },
            r#"{"type":"struct","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Geometry","version":1,"doc":"Geometry","field":"c"}"#.to_owned(),
        ),
    ];
    for (mysql_type, data_type, expected) in cases {
        assert_eq!(
            column_json(data_type, &MYSQL_SOURCE_BLOCK, &[]),
            expected,
            "{mysql_type}"
        );
    }
    // BIGINT UNSIGNED with bigint.unsigned.handling.mode=precise is described as DECIMAL(20,0).
    assert_eq!(
        column_json(
            DataType::Decimal {
                precision: Some(20),
                scale: Some(0)
            },
            &MYSQL_SOURCE_BLOCK,
            &[]
        ),
        expect(
            "bytes",
            r#","name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"0","connect.decimal.precision":"20"}"#
        )
    );
    // time.precision.mode=connect.
    assert_eq!(
        column_json(
            DataType::Timestamp { precision: Some(6) },
            &MYSQL_SOURCE_BLOCK,
            &[("time.precision.mode", "connect")]
        ),
        expect(
            "int64",
            r#","name":"org.apache.kafka.connect.data.Timestamp","version":1"#
        )
    );
}

/// Postgres types against Debezium's Postgres type table (default `adaptive`).
#[test]
fn postgres_type_mapping_matches_debezium() {
    let dbz = |name: &str| format!(r#","name":"{name}","version":1"#);
    type Case<'a> = (&'a str, DataType, &'a [(&'a str, &'a str)], String);
    let cases: Vec<Case<'_>> = vec![
        ("int2", DataType::Int16, &[], expect("int16", "")),
        ("int8", DataType::Int64, &[], expect("int64", "")),
        ("time(3)", DataType::Time { precision: Some(3) }, &[], expect("int32", &dbz("io.debezium.time.Time"))),
        ("time", DataType::Time { precision: Some(6) }, &[], expect("int64", &dbz("io.debezium.time.MicroTime"))),
        ("timestamp(3)", DataType::Timestamp { precision: Some(3) }, &[], expect("int64", &dbz("io.debezium.time.Timestamp"))),
        ("timestamp", DataType::Timestamp { precision: Some(6) }, &[], expect("int64", &dbz("io.debezium.time.MicroTimestamp"))),
        ("timestamptz", DataType::TimestampTz { precision: Some(6) }, &[], expect("string", &dbz("io.debezium.time.ZonedTimestamp"))),
        ("timetz", DataType::TimeTz { precision: Some(6) }, &[], expect("string", &dbz("io.debezium.time.ZonedTime"))),
        ("interval", DataType::Interval, &[], expect("int64", &dbz("io.debezium.time.MicroDuration"))),
        ("interval (string)", DataType::Interval, &[("interval.handling.mode", "string")], expect("string", &dbz("io.debezium.time.Interval"))),
        ("uuid", DataType::Uuid, &[], expect("string", &dbz("io.debezium.data.Uuid"))),
        ("jsonb", DataType::Json, &[], expect("string", &dbz("io.debezium.data.Json"))),
        ("xml", DataType::Xml, &[], expect("string", &dbz("io.debezium.data.Xml"))),
        ("ltree", DataType::Ltree, &[], expect("string", &dbz("io.debezium.data.Ltree"))),
        ("bytea (hex)", DataType::Bytes { length: None }, &[("binary.handling.mode", "hex")], expect("string", "")),
        (
            "money",
            DataType::Decimal { precision: None, scale: Some(2) },
            &[],
            expect("bytes", r#","name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}"#),
        ),
        ("numeric (double)", DataType::Decimal { precision: Some(5), scale: Some(1) }, &[("decimal.handling.mode", "double")], expect("double", "")),
        ("numeric (string)", DataType::Decimal { precision: None, scale: None }, &[("decimal.handling.mode", "string")], expect("string", "")),
        (
            "numeric",
            DataType::Decimal { precision: None, scale: None },
            &[],
            r#"{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal","field":"c"}"#.to_owned(),
        ),
        (
            "int4[]",
            DataType::Array(Box::new(DataType::Int32)),
            &[],
            r#"{"type":"array","items":{"type":"int32","optional":true},"optional":true,"field":"c"}"#.to_owned(),
        ),
        ("date (connect)", DataType::Date, &[("time.precision.mode", "connect")], expect("int32", r#","name":"org.apache.kafka.connect.data.Date","version":1"#)),
    ];
    for (pg_type, data_type, extra, expected) in cases {
        assert_eq!(
            column_json(data_type, &POSTGRES_SOURCE_BLOCK, extra),
            expected,
            "{pg_type}"
        );
    }
}

#[test]
fn mysql_schema_change_record() {
    use outflow_core::event::{SchemaChange, SchemaChangeKind};
    let mut f = EnvelopeFormatter::new(config(&MYSQL_SOURCE_BLOCK, &[]));
    let mut name = ColumnSchema::new("name", DataType::String { length: Some(20) }, true);
    name.source_type = "VARCHAR(20)".into();
    let mut id = ColumnSchema::new("id", DataType::Int32, false);
    id.source_type = "INT".into();
    let table = Arc::new(
        TableSchema::new(
            TableId::new("inventory", "items"),
            SchemaVersion::FIRST,
            vec![id, name],
            &["id"],
        )
        .unwrap(),
    );
    let position = SourcePosition::from(BinlogPosition {
        file: "binlog.000001".into(),
        pos: 300,
        event: 0,
        row: 0,
        gtid: None,
        gtid_set: None,
        snapshot: false,
        snapshot_reads: None,
    });
    let ddl = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))";
    let change = EventKind::SchemaChange(SchemaChange {
        table,
        kind: SchemaChangeKind::Create,
        ddl: Some(ddl.into()),
    });
    let mut out = Vec::new();
    f.format(&event(position, change.clone()), 0, &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(&*out[0].topic, "demo");
    assert_eq!(out[0].kind, RecordKind::SchemaChange);
    let key = out[0].key.as_ref().unwrap();
    assert_eq!(
        key.schema.name.as_deref(),
        Some("io.debezium.connector.mysql.SchemaChangeKey")
    );
    let value = out[0].value.as_ref().unwrap();
    let text = String::from_utf8(
        json::encode(&value.schema, Some(&value.datum), false)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(text.contains(r#""databaseName":"inventory","schemaName":null,"ddl":"CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))","tableChanges":[{"type":"CREATE","id":"\"inventory\".\"items\"","table":{"defaultCharsetName":null,"primaryKeyColumnNames":["id"],"columns":[{"name":"id","jdbcType":4,"nativeType":null,"typeName":"INT","typeExpression":"INT","#), "{text}");
    assert!(text.contains(r#"{"name":"name","jdbcType":12,"nativeType":null,"typeName":"VARCHAR","typeExpression":"VARCHAR","charsetName":null,"length":20,"scale":null,"position":2,"optional":true"#), "{text}");
    let mut bytes = Vec::new();
    crate::encoding::avro::encode(&value.schema, &value.datum, &mut bytes).unwrap();

    // Postgres has no schema-change topic.
    let mut f = EnvelopeFormatter::new(config(&POSTGRES_SOURCE_BLOCK, &[]));
    let mut out = Vec::new();
    f.format(&event(pg(1, 1), change), 0, &mut out).unwrap();
    assert!(out.is_empty());
}

/// The MySQL `source` record and a key, as AvroConverter registers them for Debezium's
/// MySQL connector (field order and optionality of `BinlogSourceInfoStructMaker`).
#[test]
fn mysql_avro_source_and_key_schemas_match_debezium() {
    let mut f = EnvelopeFormatter::new(config(&MYSQL_SOURCE_BLOCK, &[]));
    let table = Arc::new(
        TableSchema::new(
            TableId::new("inventory", "customers"),
            SchemaVersion::FIRST,
            vec![
                ColumnSchema::new("id", DataType::Int32, false),
                ColumnSchema::new("email", DataType::String { length: Some(255) }, false),
                ColumnSchema::new("flag", DataType::Int16, true),
            ],
            &["id"],
        )
        .unwrap(),
    );
    let position = SourcePosition::from(BinlogPosition {
        file: "mysql-bin.000003".into(),
        pos: 154,
        event: 1,
        row: 0,
        gtid: None,
        gtid_set: None,
        snapshot: false,
        snapshot_reads: None,
    });
    let mut out = Vec::new();
    f.format(
        &event(
            position,
            EventKind::Insert {
                table,
                after: vec![Value::Int32(1004), Value::String("a@b".into()), Value::Null],
            },
        ),
        0,
        &mut out,
    )
    .unwrap();
    let value_schema = avro::avro_schema(&out[0].value.as_ref().unwrap().schema);
    let source = concat!(
        r#"{"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.mysql","fields":["#,
        r#"{"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},"#,
        r#"{"name":"ts_ms","type":"long"},"#,
        r#"{"name":"snapshot","type":[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],"default":"false"},"#,
        r#"{"name":"db","type":"string"},{"name":"sequence","type":["null","string"],"default":null},"#,
        r#"{"name":"ts_us","type":["null","long"],"default":null},{"name":"ts_ns","type":["null","long"],"default":null},"#,
        r#"{"name":"table","type":["null","string"],"default":null},{"name":"server_id","type":"long"},"#,
        r#"{"name":"gtid","type":["null","string"],"default":null},{"name":"file","type":"string"},"#,
        r#"{"name":"pos","type":"long"},{"name":"row","type":"int"},"#,
        r#"{"name":"thread","type":["null","long"],"default":null},{"name":"query","type":["null","string"],"default":null}],"#,
        r#""connect.version":1,"connect.name":"io.debezium.connector.mysql.Source"}}"#
    );
    assert!(value_schema.contains(source), "{value_schema}");
    assert!(
        value_schema.contains(
            r#"{"name":"flag","type":["null",{"type":"int","connect.type":"int16"}],"default":null}"#
        ),
        "{value_schema}"
    );
    assert_eq!(
        avro::avro_schema(&out[0].key.as_ref().unwrap().schema),
        r#"{"type":"record","name":"Key","namespace":"demo.inventory.customers","fields":[{"name":"id","type":"int"}],"connect.name":"demo.inventory.customers.Key"}"#
    );
}

#[test]
fn required_columns_missing_from_a_key_only_before_image_get_debeziums_fallback() {
    use crate::connect::{ConnectSchema, SchemaKind};
    use crate::envelope::types::fallback_datum;
    for (schema, expected) in [
        (ConnectSchema::new(SchemaKind::Int32), Datum::Int32(0)),
        (
            ConnectSchema::new(SchemaKind::Boolean),
            Datum::Boolean(false),
        ),
        (
            ConnectSchema::new(SchemaKind::String),
            Datum::String(String::new()),
        ),
        (
            crate::connect::logical::decimal(2, Some(8)),
            Datum::Bytes(vec![0]),
        ),
        (
            crate::connect::logical::variable_scale_decimal(),
            Datum::Struct(vec![Datum::Int32(0), Datum::Bytes(vec![0])]),
        ),
    ] {
        assert_eq!(fallback_datum(&schema), expected, "{schema:?}");
    }
}

#[test]
fn a_key_change_is_a_delete_a_tombstone_and_a_create() {
    let mut f = EnvelopeFormatter::new(config(&POSTGRES_SOURCE_BLOCK, &[]));
    let mut out = Vec::new();
    let update = |before: Option<Row>, after: Row| {
        event(
            pg(1000, 1),
            EventKind::Update {
                table: users(),
                before,
                after,
            },
        )
    };
    f.format(&update(Some(row(2)), row(4)), 0, &mut out)
        .unwrap();
    let kinds: Vec<RecordKind> = out.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            RecordKind::Change,
            RecordKind::Tombstone,
            RecordKind::Change
        ]
    );
    let key = |r: &Record| {
        let key = r.key.as_ref().unwrap();
        String::from_utf8(
            json::encode(&key.schema, Some(&key.datum), false)
                .unwrap()
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        out.iter().map(key).collect::<Vec<_>>(),
        [r#"{"id":2}"#, r#"{"id":2}"#, r#"{"id":4}"#]
    );
    let headers: Vec<&[(String, String)]> = out.iter().map(|r| r.headers.as_slice()).collect();
    let header = |name: &str, value: &str| vec![(name.to_owned(), value.to_owned())];
    assert_eq!(headers[0], header("__debezium.newkey", r#"{"id":4}"#));
    assert_eq!(headers[1], header("__debezium.newkey", r#"{"id":4}"#));
    assert_eq!(headers[2], header("__debezium.oldkey", r#"{"id":2}"#));
    let op = |r: &Record| {
        let text = json::encode(
            &r.value.as_ref().unwrap().schema,
            Some(&r.value.as_ref().unwrap().datum),
            false,
        )
        .unwrap()
        .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        value["op"].as_str().unwrap().to_owned()
    };
    assert_eq!((op(&out[0]), op(&out[2])), ("d".to_owned(), "c".to_owned()));

    // The same key, or no old image: one update.
    for before in [Some(row(4)), None] {
        let mut out = Vec::new();
        f.format(&update(before, row(4)), 0, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0].headers.is_empty());
    }
}
