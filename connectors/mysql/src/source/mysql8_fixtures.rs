//! MySQL-8-only binlog events, on byte fixtures built by hand from the documented formats
//! (no MySQL 8 server can run here), read through the same parser and decoders as the
//! live stream: mysql_common's event reader (which mysql_async's binlog stream uses),
//! [`mysql_gtid`], [`MySqlGtidSet`], [`crate::types::table_map_shape`] and
//! [`crate::types::binlog_row_values`].
//!
//! Formats (MySQL 8.0 source documentation, `libbinlogevents`):
//! - common v4 header, 19 bytes: timestamp u32, type u8, server_id u32, event_size u32,
//!   log_pos u32, flags u16 (all little-endian);
//! - GTID_LOG_EVENT (33): flags u8, SID 16 bytes, GNO u64, lt_type u8 (2), last_committed
//!   u64, sequence_number u64 (`Gtid_event`);
//! - PREVIOUS_GTIDS_EVENT (35): n_sids u64, then per SID: 16 bytes, n_intervals u64,
//!   intervals as (start u64, end u64) half-open (`Previous_gtids_event`);
//! - TRANSACTION_PAYLOAD_EVENT (40): header fields as (type, length, value) length-encoded
//!   integers — 1 payload size, 2 compression type (0 ZSTD, 255 NONE), 3 uncompressed
//!   size — ended by type 0, then the payload: the transaction's events, each a full
//!   event without checksum (`Transaction_payload_event`, WL#3549);
//! - TABLE_MAP_EVENT (19) with optional metadata TLVs (1 SIGNEDNESS, 2 DEFAULT_CHARSET, 4
//!   COLUMN_NAME, 8 SIMPLE_PRIMARY_KEY) as `binlog_row_metadata=FULL` writes them;
//! - WRITE_ROWS_EVENT v2 (30): table_id u48, flags u16, extra_data_len u16 (2), column
//!   count, columns-present bitmap, then per row a null bitmap and the values;
//! - MySQL binary JSON (`json_binary.h`): small object = type 0x00, count u16, size u16,
//!   key entries (offset u16, length u16), value entries (type u8, inline value u16), keys.

use std::io::Cursor;

use mysql_async::binlog::events::EventData;
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::BinlogVersion;
use outflow_core::Value;

use super::mysql_gtid;
use crate::gtid::MySqlGtidSet;
use crate::types::{binlog_row_values, table_map_shape};

const SID: [u8; 16] = [
    0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62,
];
const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

/// An event: the v4 header, then `body`.
fn event(kind: u8, body: &[u8], log_pos: u32) -> Vec<u8> {
    let mut e = Vec::with_capacity(19 + body.len());
    e.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    e.push(kind);
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&u32::try_from(19 + body.len()).unwrap().to_le_bytes());
    e.extend_from_slice(&log_pos.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(body);
    e
}

fn gtid_event(gno: u64) -> Vec<u8> {
    let mut body = vec![1u8];
    body.extend_from_slice(&SID);
    body.extend_from_slice(&gno.to_le_bytes());
    body.push(2);
    body.extend_from_slice(&7u64.to_le_bytes());
    body.extend_from_slice(&8u64.to_le_bytes());
    event(33, &body, 1000)
}

fn lenenc(n: u64) -> Vec<u8> {
    match n {
        0..=250 => vec![u8::try_from(n).unwrap()],
        251..=0xffff => {
            let mut v = vec![0xfc];
            v.extend_from_slice(&u16::try_from(n).unwrap().to_le_bytes());
            v
        }
        _ => {
            let mut v = vec![0xfd];
            v.extend_from_slice(&n.to_le_bytes()[..3]);
            v
        }
    }
}

/// `(type, length, value)` of a payload header field.
fn field(kind: u64, value: u64) -> Vec<u8> {
    let value = lenenc(value);
    let mut f = lenenc(kind);
    f.extend(lenenc(value.len() as u64));
    f.extend(value);
    f
}

/// BEGIN, TABLE_MAP of `shop.t (id INT PK, name VARCHAR(20) utf8mb4, doc JSON)`, one
/// WRITE_ROWS v2 with two rows, XID: the body of one transaction.
fn transaction_events() -> Vec<u8> {
    let mut out = Vec::new();
    // QUERY_EVENT BEGIN: thread_id, exec_time, db_len 0, error_code, status_vars_len 0,
    // db "" + NUL, query.
    let mut query = Vec::new();
    query.extend_from_slice(&7u32.to_le_bytes());
    query.extend_from_slice(&0u32.to_le_bytes());
    query.push(0);
    query.extend_from_slice(&0u16.to_le_bytes());
    query.extend_from_slice(&0u16.to_le_bytes());
    query.push(0);
    query.extend_from_slice(b"BEGIN");
    out.extend(event(2, &query, 0));

    let table_id: u64 = 113;
    let mut map = Vec::new();
    map.extend_from_slice(&table_id.to_le_bytes()[..6]);
    map.extend_from_slice(&1u16.to_le_bytes());
    map.push(4);
    map.extend_from_slice(b"shop\0");
    map.push(1);
    map.extend_from_slice(b"t\0");
    map.extend(lenenc(3));
    map.extend_from_slice(&[3, 15, 245]); // LONG, VARCHAR, JSON
    map.extend(lenenc(3));
    map.extend_from_slice(&[80, 0, 4]); // VARCHAR max bytes 80; JSON pack length 4
    map.push(0b110); // name and doc nullable
    map.extend_from_slice(&[1, 1, 0b0000_0000]); // SIGNEDNESS: id signed
    let charset = lenenc(255);
    map.push(2);
    map.extend(lenenc(charset.len() as u64));
    map.extend(charset); // DEFAULT_CHARSET utf8mb4_0900_ai_ci
    let names: Vec<u8> = [&b"id"[..], b"name", b"doc"]
        .iter()
        .flat_map(|n| {
            let mut v = vec![u8::try_from(n.len()).unwrap()];
            v.extend_from_slice(n);
            v
        })
        .collect();
    map.push(4);
    map.extend(lenenc(names.len() as u64));
    map.extend(names);
    map.extend_from_slice(&[8, 1, 0]); // SIMPLE_PRIMARY_KEY: column 0
    out.extend(event(19, &map, 0));

    // {"a": 1} in MySQL binary JSON.
    let json = [
        0x00, 0x01, 0x00, 0x0c, 0x00, 0x0b, 0x00, 0x01, 0x00, 0x05, 0x01, 0x00, b'a',
    ];
    let mut rows = Vec::new();
    rows.extend_from_slice(&table_id.to_le_bytes()[..6]);
    rows.extend_from_slice(&1u16.to_le_bytes());
    rows.extend_from_slice(&2u16.to_le_bytes());
    rows.extend(lenenc(3));
    rows.push(0b111);
    // (1, 'één', {"a": 1})
    rows.push(0);
    rows.extend_from_slice(&1i32.to_le_bytes());
    let name = "één".as_bytes();
    rows.push(u8::try_from(name.len()).unwrap());
    rows.extend_from_slice(name);
    rows.extend_from_slice(&u32::try_from(json.len()).unwrap().to_le_bytes());
    rows.extend_from_slice(&json);
    // (2, NULL, NULL)
    rows.push(0b110);
    rows.extend_from_slice(&2i32.to_le_bytes());
    out.extend(event(30, &rows, 0));

    out.extend(event(16, &99u64.to_le_bytes(), 0));
    out
}

fn payload_event(compressed: bool) -> Vec<u8> {
    let inner = transaction_events();
    let (algorithm, payload) = if compressed {
        (0, zstd::encode_all(&inner[..], 3).unwrap())
    } else {
        (255, inner.clone())
    };
    let mut body = field(2, algorithm);
    if compressed {
        body.extend(field(3, inner.len() as u64));
    }
    body.extend(field(1, payload.len() as u64));
    body.extend(lenenc(0));
    body.extend(payload);
    event(40, &body, 5000)
}

#[test]
fn gtid_events_name_the_transaction_as_uuid_and_number() {
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let bytes = gtid_event(23);
    let event = reader.read(&bytes[..]).unwrap().unwrap();
    let Some(EventData::GtidEvent(gtid)) = event.read_data().unwrap() else {
        panic!("not a GTID event");
    };
    let text = mysql_gtid(&gtid.sid(), gtid.gno());
    assert_eq!(text, format!("{UUID}:23"));
    let mut set = MySqlGtidSet::parse(&format!("{UUID}:1-22")).unwrap();
    set.apply(&text).unwrap();
    assert_eq!(set.to_string(), format!("{UUID}:1-23"));
}

#[test]
fn previous_gtids_give_the_set_before_the_file() {
    let mut body = Vec::new();
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend_from_slice(&SID);
    body.extend_from_slice(&2u64.to_le_bytes());
    for (start, end) in [(1u64, 6u64), (7, 10)] {
        body.extend_from_slice(&start.to_le_bytes());
        body.extend_from_slice(&end.to_le_bytes());
    }
    let bytes = event(35, &body, 200);
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let event = reader.read(&bytes[..]).unwrap().unwrap();
    let Some(EventData::PreviousGtidsEvent(previous)) = event.read_data().unwrap() else {
        panic!("not a PREVIOUS_GTIDS event");
    };
    assert!(crate::gtid::previous_gtids_plausible(event.data()));
    assert!(!crate::gtid::previous_gtids_plausible(
        &body[..body.len() - 1]
    ));
    let set = MySqlGtidSet::from_previous_gtids(&previous);
    assert_eq!(set.to_string(), format!("{UUID}:1-5:7-9"));
    assert_eq!(set.sids().unwrap().len(), 1);
}

/// A compressed (ZSTD) and an uncompressed transaction payload give the same events,
/// and their rows decode to the same values, JSON from MySQL's binary form included.
#[test]
fn transaction_payloads_unpack_into_decodable_rows() {
    for compressed in [false, true] {
        let mut reader = EventStreamReader::new(BinlogVersion::Version4);
        let bytes = payload_event(compressed);
        let event = reader.read(&bytes[..]).unwrap().unwrap();
        assert_eq!(event.header().event_type_raw(), 40);
        let Some(EventData::TransactionPayloadEvent(payload)) = event.read_data().unwrap() else {
            panic!("not a TRANSACTION_PAYLOAD event");
        };
        let mut inner = Cursor::new(payload.danger_decompress());
        let mut kinds = Vec::new();
        let mut rows = Vec::new();
        while let Some(event) = reader.read_decompressed(&mut inner).unwrap() {
            kinds.push(event.header().event_type_raw());
            if let Some(EventData::RowsEvent(data)) = event.read_data().unwrap() {
                let tme = reader.get_tme(data.table_id()).unwrap();
                let shape = table_map_shape(tme).unwrap();
                assert_eq!(shape.names, ["id", "name", "doc"]);
                assert_eq!(shape.key, [0]);
                let mut by_library = Vec::new();
                for row in data.rows(tme) {
                    let (before, after) = row.unwrap();
                    assert!(before.is_none());
                    by_library.push(binlog_row_values(after.unwrap(), &shape.codecs).unwrap());
                }
                // The source's own row reader gives the same values.
                let layout = crate::types::RowLayout::new(tme, &shape.codecs).unwrap();
                let direct = crate::types::decode_rows(&data, &layout, &shape.codecs).unwrap();
                let direct: Vec<Vec<Value>> = direct
                    .into_iter()
                    .map(|(before, after)| {
                        assert!(before.is_none());
                        after.unwrap()
                    })
                    .collect();
                assert_eq!(direct, by_library);
                rows.extend(by_library);
            }
        }
        assert_eq!(kinds, [2, 19, 30, 16], "compressed {compressed}");
        assert_eq!(
            rows,
            [
                vec![
                    Value::Int32(1),
                    Value::String("één".into()),
                    Value::Json("{\"a\":1}".into())
                ],
                vec![Value::Int32(2), Value::Null, Value::Null],
            ],
            "compressed {compressed}"
        );
    }
}

/// ROWS_QUERY_EVENT (29, `Rows_query_event`): a length byte (ignored, the text may be
/// longer than 255) then the statement; `include.query` copies it into `source.query`.
#[test]
fn rows_query_events_carry_the_statement() {
    let statement = "INSERT INTO t VALUES (1, 'één', '{\"a\": 1}')";
    let mut body = vec![u8::try_from(statement.len()).unwrap()];
    body.extend_from_slice(statement.as_bytes());
    let bytes = event(29, &body, 300);
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let event = reader.read(&bytes[..]).unwrap().unwrap();
    let Some(EventData::RowsQueryEvent(query)) = event.read_data().unwrap() else {
        panic!("not a ROWS_QUERY event");
    };
    assert_eq!(query.query(), statement);
}

use crate::fuzzing::decode_all;

proptest::proptest! {
    /// The uncompressed transaction's events with bytes changed anywhere (not in the
    /// event headers, which would only stop the reader early): no panic.
    #[test]
    fn damaged_events_never_panic(
        changes in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 1..8)
    ) {
        let mut bytes = transaction_events();
        for (at, value) in changes {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        decode_all(&bytes);
    }
}
