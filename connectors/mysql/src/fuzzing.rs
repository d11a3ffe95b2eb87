//! Entry points for fuzzing and property tests: the decoding path of the binlog stream,
//! over arbitrary bytes, with the same guards the source applies before handing data to
//! mysql_common (whose reader trusts sizes and counts in the data).

use std::io::Cursor;

use mysql_async::binlog::events::EventData;
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::BinlogVersion;

use crate::types::table_map_shape;

/// Runs bytes through the binlog decoding path as the stream does (mysql_common's
/// event reader, the guards the source applies, TABLE_MAP shapes, row values); returns
/// nothing and must not panic, whatever the bytes.
pub fn decode_all(data: &[u8]) {
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut input = Cursor::new(data);
    for _ in 0..16 {
        // mysql_common's reader panics when an event's size runs past the input (its
        // `read_exact(..).unwrap()`); the live stream hands it one whole packet per event,
        // and guards the rest with catch_unwind. Stop where the next event is short.
        let at = usize::try_from(input.position()).unwrap_or(usize::MAX);
        let rest = data.get(at..).unwrap_or_default();
        let size = rest
            .get(9..13)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        if rest.len() < 19 || size < 19 || size > rest.len() {
            break;
        }
        let Ok(Some(event)) = reader.read(&mut input) else {
            break;
        };
        if event.header().event_type_raw() == 35
            && !crate::gtid::previous_gtids_plausible(event.data())
        {
            continue;
        }
        let Ok(expanded) = crate::source::expand_compressed(&event) else {
            continue;
        };
        let event = expanded.unwrap_or(event);
        let Ok(Some(body)) = crate::source::read_event_data(&event) else {
            continue;
        };
        if let EventData::RowsEvent(rows) = body {
            let Some(tme) = reader.get_tme(rows.table_id()) else {
                continue;
            };
            let Ok(shape) = table_map_shape(tme) else {
                continue;
            };
            // The source's row reader. mysql_common's own (`rows()` +
            // `binlog_row_values`, kept only as the benches' and fixtures' reference) is
            // not fuzzed: the source never runs it, and it overflows on a negative
            // DATETIME2 that `decode_rows` refuses first.
            if let Ok(layout) = crate::types::RowLayout::new(tme, &shape.codecs) {
                let _ = crate::types::decode_rows(&rows, &layout, &shape.codecs);
            }
        }
    }
}

/// The `binlog_events` fuzz target: GTID texts, then the binlog decoding path.
pub fn binlog_events(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::gtid::MySqlGtidSet::parse(&text);
    let _ = crate::gtid::MariaDbGtidPosition::parse(&text);
    decode_all(data);
}

/// The `mariadb_events` fuzz target: MariaDB's own event bodies and GTID state text.
pub fn mariadb_events(data: &[u8]) {
    let _ = crate::mariadb::gtid_event(data, 1);
    let _ = crate::mariadb::gtid_list_event(data);
    let _ = crate::mariadb::binlog_checkpoint_event(data);
    let _ = crate::mariadb::annotate_rows_event(data);
    let _ = crate::mariadb::parse_gtid_state(&String::from_utf8_lossy(data));
}

/// The `ddl` fuzz target: the DDL head reader over any statement text. Texts with
/// `DIV` are skipped: sqlparser 0.59 may panic inside MySQL `DIV` parsing, which
/// `table_changes` catches, but libFuzzer aborts on any panic, caught or not.
pub fn ddl(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if text.to_ascii_uppercase().contains("DIV") {
        return;
    }
    let _ = crate::ddl::table_changes(&text, "db");
}
