//! Avro through the registry: encode → register → decode with a reader that knows only
//! the registry; schema evolution; registry failures classified.

use std::collections::BTreeMap;
use std::sync::Arc;

use apache_avro::types::Value as Avro;
use outflow_core::{
    ChangeEvent, Classify, ColumnSchema, DataType, Decimal, ErrorClass, EventKind, Interval,
    SchemaVersion, SourcePosition, TableId, TableSchema, Value,
};
use outflow_interchange::encoding::http_registry::{HttpSchemaRegistry, RegistryClientConfig};
use outflow_interchange::encoding::registry::{
    AvroSerializer, RegistryError, SchemaRegistry, SubjectNameStrategy,
};
use outflow_interchange::envelope::{EnvelopeConfig, EnvelopeFormatter, Record};
use outflow_postgres::position::{Lsn, PgPosition};
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;
use outflow_testkit::{registry, unique_name};

fn client(url: &str) -> HttpSchemaRegistry {
    let props: BTreeMap<String, String> =
        [("schema.registry.url".to_owned(), url.to_owned())].into();
    HttpSchemaRegistry::new(RegistryClientConfig::from_properties("", &props).unwrap()).unwrap()
}

fn formatter(prefix: &str) -> EnvelopeFormatter {
    let props: BTreeMap<String, String> = [("topic.prefix", prefix), ("database.dbname", "shop")]
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    EnvelopeFormatter::new(EnvelopeConfig::from_properties(&POSTGRES_SOURCE_BLOCK, &props).unwrap())
}

fn column(name: &str, data_type: DataType, nullable: bool) -> ColumnSchema {
    ColumnSchema::new(name, data_type, nullable)
}

fn all_types_table(version: u64) -> Arc<TableSchema> {
    Arc::new(
        TableSchema::new(
            TableId::new("public", "all_types"),
            SchemaVersion(version),
            vec![
                column("id", DataType::Int32, false),
                column("small", DataType::Int16, true),
                column("big", DataType::Int64, true),
                column("flag", DataType::Bool, true),
                column("ratio", DataType::Float64, true),
                column(
                    "price",
                    DataType::Decimal {
                        precision: Some(10),
                        scale: Some(2),
                    },
                    true,
                ),
                column(
                    "amount",
                    DataType::Decimal {
                        precision: None,
                        scale: None,
                    },
                    true,
                ),
                column("name", DataType::String { length: Some(40) }, true),
                column("blob", DataType::Bytes { length: None }, true),
                column("day", DataType::Date, true),
                column("at", DataType::Time { precision: Some(6) }, true),
                column("created", DataType::Timestamp { precision: Some(6) }, true),
                column(
                    "instant",
                    DataType::TimestampTz { precision: Some(6) },
                    true,
                ),
                column("span", DataType::Interval, true),
                column("uid", DataType::Uuid, true),
                column("doc", DataType::Json, true),
                column(
                    "mood",
                    DataType::Enum {
                        labels: vec!["sad".into(), "happy".into()],
                    },
                    true,
                ),
                column("tags", DataType::Array(Box::new(DataType::Int32)), true),
            ],
            &["id"],
        )
        .unwrap(),
    )
}

fn all_types_row(id: i32) -> Vec<Value> {
    vec![
        Value::Int32(id),
        Value::Int16(-7),
        Value::Int64(1 << 40),
        Value::Bool(true),
        Value::Float64(0.25),
        Value::Decimal(Decimal::parse("12345.67").unwrap()),
        Value::Decimal(Decimal::parse("-0.001").unwrap()),
        Value::String("zoë".into()),
        Value::Bytes(vec![0, 1, 255]),
        Value::Date(19_000),
        Value::Time(45_296_000_001),
        Value::Timestamp(1_700_000_000_000_001),
        Value::TimestampTz(1_700_000_000_000_001),
        Value::Interval(Interval {
            months: 0,
            days: 1,
            micros: 5,
        }),
        Value::Uuid([0x11; 16]),
        Value::Json(r#"{"a":1}"#.into()),
        Value::Enum("happy".into()),
        Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(3)]),
    ]
}

fn insert(table: &Arc<TableSchema>, seq: u64, after: Vec<Value>) -> ChangeEvent {
    ChangeEvent {
        position: SourcePosition::from(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(5000),
            lsn: Lsn(4000 + seq),
            seq,
            tx_id: Some(900),
            snapshot: false,
        }),
        source_ts_us: Some(1_700_000_000_000_000),
        kind: EventKind::Insert {
            table: Arc::clone(table),
            after,
        },
    }
}

fn records(f: &mut EnvelopeFormatter, event: &ChangeEvent) -> Vec<Record> {
    let mut out = Vec::new();
    f.format(event, 1_700_000_000_500_000, &mut out).unwrap();
    out
}

/// Reads the writer schema from the registry by the id in the Confluent header, and
/// decodes with apache-avro: a reader that knows nothing but the registry.
pub(crate) async fn decode(bytes: &[u8]) -> Avro {
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let body: serde_json::Value = reqwest::get(format!("{}/schemas/ids/{id}", registry().url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema = apache_avro::Schema::parse_str(body["schema"].as_str().unwrap()).unwrap();
    #[allow(deprecated)] // The replacement reader API is not in 0.22's stable surface.
    apache_avro::from_avro_datum(&schema, &mut &bytes[5..], None).unwrap()
}

pub(crate) fn field<'a>(record: &'a Avro, name: &str) -> &'a Avro {
    let Avro::Record(fields) = record else {
        panic!("not a record: {record:?}")
    };
    &fields
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .1
}

pub(crate) fn unwrap_union(value: &Avro) -> &Avro {
    match value {
        Avro::Union(_, inner) => inner,
        other => other,
    }
}

#[tokio::test]
async fn encode_register_decode_round_trip() {
    let prefix = unique_name("rt");
    let mut f = formatter(&prefix);
    let table = all_types_table(1);
    let mut serializer = AvroSerializer::new(
        client(&registry().url()),
        SubjectNameStrategy::TopicName,
        SubjectNameStrategy::TopicName,
    );

    let record = &records(&mut f, &insert(&table, 1, all_types_row(42)))[0];
    let bytes = serializer.serialize(record).await.unwrap();

    let key = decode(bytes.key.as_deref().unwrap()).await;
    assert_eq!(field(&key, "id"), &Avro::Int(42));

    let value = decode(bytes.value.as_deref().unwrap()).await;
    assert_eq!(unwrap_union(field(&value, "before")), &Avro::Null);
    let after = unwrap_union(field(&value, "after"));
    let col = |name: &str| unwrap_union(field(after, name)).clone();
    assert_eq!(col("id"), Avro::Int(42));
    assert_eq!(col("small"), Avro::Int(-7));
    assert_eq!(col("big"), Avro::Long(1 << 40));
    assert_eq!(col("flag"), Avro::Boolean(true));
    assert_eq!(col("ratio"), Avro::Double(0.25));
    let Avro::Decimal(price) = col("price") else {
        panic!("price: {:?}", col("price"))
    };
    assert_eq!(Vec::<u8>::try_from(price).unwrap(), num_bytes(1_234_567));
    let Avro::Record(amount) = col("amount") else {
        panic!()
    };
    assert_eq!(amount[0].1, Avro::Int(3));
    assert_eq!(amount[1].1, Avro::Bytes(num_bytes(-1)));
    assert_eq!(col("name"), Avro::String("zoë".into()));
    assert_eq!(col("blob"), Avro::Bytes(vec![0, 1, 255]));
    assert_eq!(col("day"), Avro::Int(19_000));
    assert_eq!(col("at"), Avro::Long(45_296_000_001));
    assert_eq!(col("created"), Avro::Long(1_700_000_000_000_001));
    assert_eq!(
        col("instant"),
        Avro::String("2023-11-14T22:13:20.000001Z".into())
    );
    assert_eq!(col("span"), Avro::Long(86_400_000_005));
    assert_eq!(
        col("uid"),
        Avro::String("11111111-1111-1111-1111-111111111111".into())
    );
    assert_eq!(col("doc"), Avro::String(r#"{"a":1}"#.into()));
    assert_eq!(col("mood"), Avro::String("happy".into()));
    assert_eq!(
        col("tags"),
        Avro::Array(vec![
            Avro::Union(1, Box::new(Avro::Int(1))),
            Avro::Union(0, Box::new(Avro::Null)),
            Avro::Union(1, Box::new(Avro::Int(3))),
        ])
    );
    let source = field(&value, "source");
    assert_eq!(
        unwrap_union(field(source, "snapshot")),
        &Avro::String("false".into())
    );
    assert_eq!(unwrap_union(field(source, "txId")), &Avro::Long(900));
    assert_eq!(field(&value, "op"), &Avro::String("c".into()));

    // Ids are cached: more events of the same table never call the registry again.
    for seq in 2..50 {
        let record = &records(&mut f, &insert(&table, seq, all_types_row(seq as i32)))[0];
        serializer.serialize(record).await.unwrap();
    }
    assert_eq!(
        serializer.registrations(),
        2,
        "one key and one value registration"
    );
}

fn num_bytes(v: i64) -> Vec<u8> {
    // Minimal two's-complement big-endian, as Java's BigInteger.toByteArray.
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

fn simple_table(version: u64, columns: Vec<ColumnSchema>, key: &[&str]) -> Arc<TableSchema> {
    Arc::new(
        TableSchema::new(
            TableId::new("public", "evolving"),
            SchemaVersion(version),
            columns,
            key,
        )
        .unwrap(),
    )
}

async fn set_compatibility(subject: &str, level: &str) {
    let response = reqwest::Client::new()
        .put(format!("{}/config/{subject}", registry().url()))
        .json(&serde_json::json!({ "compatibility": level }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "PUT /config/{subject}: {}",
        response.status()
    );
}

async fn registered_versions(subject: &str) -> serde_json::Value {
    reqwest::get(format!("{}/subjects/{subject}/versions", registry().url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The Avro schema of the envelope's row record (`<topic>.Value`), the part a table
/// change evolves. (Checked on its own: apache-avro's resolver, like the lab registry,
/// does not look through the envelope's named reference `"Value"`.)
fn row_schema_of(record: &Record) -> apache_avro::Schema {
    let envelope = &record.value.as_ref().unwrap().schema;
    let mut row = (*envelope.fields()[0].schema).clone();
    row.optional = false;
    apache_avro::Schema::parse_str(&outflow_interchange::encoding::avro::avro_schema(&row)).unwrap()
}

/// Schema changes register new versions; BACKWARD-compatible ones pass the registry's
/// check, an incompatible one is a definite error naming the subject.
///
/// The registry's BACKWARD check is exercised on the key subject. The lab registry
/// (rivven-schema 0.0.22) cannot check value subjects: it fails to resolve the named
/// reference `"Value"` that Debezium's envelope uses for `after` (see docs/testing.md), so
/// value subjects are registered under NONE here and the BACKWARD compatibility of their
/// row record is checked with apache-avro's resolver instead.
#[tokio::test]
async fn schema_evolution_registers_versions_and_rejects_incompatible_changes() {
    let prefix = unique_name("evo");
    let mut f = formatter(&prefix);
    let key_subject = format!("{prefix}.public.evolving-key");
    let value_subject = format!("{prefix}.public.evolving-value");
    let mut serializer = AvroSerializer::new(
        client(&registry().url()),
        SubjectNameStrategy::TopicName,
        SubjectNameStrategy::TopicName,
    );
    let text = DataType::String { length: None };

    let v1 = simple_table(
        1,
        vec![
            column("id", DataType::Int32, false),
            column("name", text.clone(), false),
        ],
        &["id"],
    );
    // v2: a nullable column is added (to the value, and to the key through the key columns).
    let v2 = simple_table(
        2,
        vec![
            column("id", DataType::Int32, false),
            column("name", text.clone(), false),
            column("region", text.clone(), true),
        ],
        &["id", "region"],
    );
    // v3: a column is dropped.
    let v3 = simple_table(
        3,
        vec![
            column("id", DataType::Int32, false),
            column("region", text.clone(), true),
        ],
        &["id"],
    );
    let rows = [
        (v1, vec![Value::Int32(1), Value::String("a".into())]),
        (
            v2,
            vec![Value::Int32(2), Value::String("b".into()), Value::Null],
        ),
        (v3, vec![Value::Int32(3), Value::String("eu".into())]),
    ];
    let mut value_schemas = Vec::new();
    for (seq, (table, row)) in rows.into_iter().enumerate() {
        let record = &records(&mut f, &insert(&table, seq as u64, row))[0];
        if seq == 0 {
            // The subject exists after the first registration; relax only the value subject.
            serializer.serialize(record).await.unwrap();
            set_compatibility(&value_subject, "NONE").await;
        } else {
            serializer
                .serialize(record)
                .await
                .unwrap_or_else(|e| panic!("version {}: {e}", seq + 1));
        }
        value_schemas.push(row_schema_of(record));
    }
    // v3's key equals v1's: the registry answers with the existing version, as Confluent's does.
    assert_eq!(
        registered_versions(&key_subject).await,
        serde_json::json!([1, 2])
    );
    assert_eq!(
        registered_versions(&value_subject).await,
        serde_json::json!([1, 2, 3])
    );
    for pair in value_schemas.windows(2) {
        // BACKWARD: the new schema reads data written with the previous one.
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(&pair[0], &pair[1])
            .unwrap_or_else(|e| panic!("value schema not backward compatible: {e}"));
    }

    // Retyping the key column (int → string): the old data cannot be read any more.
    let v4 = simple_table(
        4,
        vec![
            column("id", text.clone(), false),
            column("region", text, true),
        ],
        &["id"],
    );
    let record = &records(
        &mut f,
        &insert(&v4, 10, vec![Value::String("x".into()), Value::Null]),
    )[0];
    assert!(
        apache_avro::schema_compatibility::SchemaCompatibility::can_read(
            &value_schemas[2],
            &row_schema_of(record)
        )
        .is_err()
    );
    let err = serializer.serialize(record).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Definite, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&key_subject),
        "names the subject: {message}"
    );
    assert!(message.contains("incompatible"), "{message}");
    assert_eq!(
        registered_versions(&key_subject).await,
        serde_json::json!([1, 2]),
        "nothing registered"
    );
}

#[tokio::test]
async fn unreachable_registry_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = RegistryClientConfig::from_properties(
        "",
        &[(
            "schema.registry.url".to_owned(),
            format!("http://127.0.0.1:{port}"),
        )]
        .into(),
    )
    .unwrap();
    config.attempts = 2;
    let registry = HttpSchemaRegistry::new(config).unwrap();
    let err = registry
        .register("s-value", r#""string""#)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Transient);
}
