//! Every mapped built-in type, written by a real Postgres and read back through pgoutput:
//! the Relation message's type OID and modifier select the type, the text parses into the
//! expected value.

use outflow_core::value::Interval;
use outflow_core::{DataType, Decimal, Value};
use outflow_postgres::pgoutput::{ColumnData, Decoder, Message};
use outflow_postgres::types::{SESSION_SETTINGS, builtin, parse_text};
use outflow_testkit::postgres;

#[tokio::test]
async fn builtin_types_round_trip_through_pgoutput() {
    let _lab = crate::LAB.shared().await;
    let cases: Vec<(&str, &str, Value, DataType)> = vec![
        ("bool", "true", Value::Bool(true), DataType::Bool),
        ("int2", "-7", Value::Int16(-7), DataType::Int16),
        (
            "int4",
            "2147483647",
            Value::Int32(i32::MAX),
            DataType::Int32,
        ),
        (
            "int8",
            "-9223372036854775808",
            Value::Int64(i64::MIN),
            DataType::Int64,
        ),
        (
            "oid",
            "4000000000",
            Value::Int64(4_000_000_000),
            DataType::Int64,
        ),
        ("float4", "1.5", Value::Float32(1.5), DataType::Float32),
        ("float8", "0.1", Value::Float64(0.1), DataType::Float64),
        (
            "numeric(10,2)",
            "12345.6",
            Value::Decimal(Decimal::new(1_234_560, 2)),
            DataType::Decimal {
                precision: Some(10),
                scale: Some(2),
            },
        ),
        (
            "numeric",
            "-0.000001",
            Value::Decimal(Decimal::new(-1, 6)),
            DataType::Decimal {
                precision: None,
                scale: None,
            },
        ),
        (
            "money",
            "-1234.56",
            Value::Decimal(Decimal::new(-123_456, 2)),
            DataType::Decimal {
                precision: None,
                scale: Some(2),
            },
        ),
        (
            "varchar(20)",
            "'zoë'",
            Value::String("zoë".into()),
            DataType::String { length: Some(20) },
        ),
        (
            "char(3)",
            "'ab'",
            Value::String("ab ".into()),
            DataType::String { length: Some(3) },
        ),
        (
            "text",
            "E'line\\nbreak'",
            Value::String("line\nbreak".into()),
            DataType::String { length: None },
        ),
        (
            "bytea",
            "'\\x00ff'",
            Value::Bytes(vec![0, 255]),
            DataType::Bytes { length: None },
        ),
        ("date", "'2024-02-29'", Value::Date(19_782), DataType::Date),
        (
            "time(3)",
            "'13:14:15.678'",
            Value::Time(47_655_678_000),
            DataType::Time { precision: Some(3) },
        ),
        (
            "timetz",
            "'13:14:15+02'",
            Value::TimeTz {
                micros: 47_655_000_000,
                offset_seconds: 7200,
            },
            DataType::TimeTz { precision: Some(6) },
        ),
        (
            "timestamp",
            "'2023-11-14 22:13:20.000001'",
            Value::Timestamp(1_700_000_000_000_001),
            DataType::Timestamp { precision: Some(6) },
        ),
        (
            "timestamptz",
            "'2023-11-15 00:13:20+02'",
            Value::TimestampTz(1_700_000_000_000_000),
            DataType::TimestampTz { precision: Some(6) },
        ),
        (
            "timestamptz",
            "'infinity'",
            Value::TimestampTz(9_223_372_036_825_200_000),
            DataType::TimestampTz { precision: Some(6) },
        ),
        (
            "interval",
            "'1 year 2 mons 3 days 04:05:06.5'",
            Value::Interval(Interval {
                months: 14,
                days: 3,
                micros: 14_706_500_000,
            }),
            DataType::Interval,
        ),
        (
            "uuid",
            "'00000000-0000-0000-0000-0000000000ff'",
            Value::Uuid({
                let mut u = [0; 16];
                u[15] = 0xff;
                u
            }),
            DataType::Uuid,
        ),
        (
            "json",
            r#"'{"a": 1}'"#,
            Value::Json(r#"{"a": 1}"#.into()),
            DataType::Json,
        ),
        (
            "jsonb",
            r#"'{"a": 1}'"#,
            Value::Json(r#"{"a": 1}"#.into()),
            DataType::Json,
        ),
        ("xml", "'<a/>'", Value::String("<a/>".into()), DataType::Xml),
        ("bit(1)", "B'1'", Value::Bool(true), DataType::Bool),
        (
            "bit(9)",
            "B'100000001'",
            Value::Bytes(vec![1, 1]),
            DataType::Bits { length: 9 },
        ),
        (
            "inet",
            "'10.0.0.1/8'",
            Value::String("10.0.0.1/8".into()),
            DataType::String { length: None },
        ),
        (
            "int4range",
            "'[1,5)'",
            Value::String("[1,5)".into()),
            DataType::String { length: None },
        ),
        (
            "int4[]",
            "'{1,NULL,3}'",
            Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(3)]),
            DataType::Array(Box::new(DataType::Int32)),
        ),
        (
            "text[]",
            r#"'{"a b",c}'"#,
            Value::Array(vec![Value::String("a b".into()), Value::String("c".into())]),
            DataType::Array(Box::new(DataType::String { length: None })),
        ),
    ];
    let db = postgres().create_database("types").await;
    let client = db.connect().await;
    let columns: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (t, ..))| format!("c{i} {t}"))
        .collect();
    let values: Vec<&str> = cases.iter().map(|(_, literal, ..)| *literal).collect();
    for statement in [
        format!("CREATE TABLE t ({})", columns.join(", ")),
        "CREATE PUBLICATION pub FOR TABLE t".to_owned(),
        format!(
            "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
            db.name()
        ),
        format!("INSERT INTO t VALUES ({})", values.join(", ")),
    ] {
        client
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    // Output functions run in the decoding session: use the replication session's settings.
    for (name, value) in SESSION_SETTINGS {
        client
            .batch_execute(&format!("SET \"{name}\" = '{value}'"))
            .await
            .unwrap();
    }
    let rows = client
        .query(
            &format!(
                "SELECT data FROM pg_logical_slot_peek_binary_changes('{}', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub')",
                db.name()
            ),
            &[],
        )
        .await
        .unwrap();
    let payloads: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
    let mut decoder = Decoder::new();
    let mut relation = None;
    let mut tuple = None;
    for payload in &payloads {
        match decoder.decode(payload).unwrap() {
            Message::Relation { columns, .. } => relation = Some(columns),
            Message::Insert { new, .. } => tuple = Some(new),
            _ => {}
        }
    }
    let (relation, tuple) = (relation.unwrap(), tuple.unwrap());
    for (i, (sql_type, _, expected_value, expected_type)) in cases.iter().enumerate() {
        let column = &relation[i];
        let pg_type = builtin(column.type_oid)
            .unwrap_or_else(|| panic!("{sql_type}: OID {} unknown", column.type_oid));
        assert_eq!(
            &pg_type.data_type(column.type_modifier),
            expected_type,
            "{sql_type}"
        );
        let ColumnData::Text(text) = tuple[i] else {
            panic!("{sql_type}: {:?}", tuple[i])
        };
        let value = parse_text(&pg_type, column.type_modifier, text)
            .unwrap_or_else(|e| panic!("{sql_type}: {e}"));
        assert_eq!(
            &value,
            expected_value,
            "{sql_type}: text {:?}",
            String::from_utf8_lossy(text)
        );
    }
}
