//! Fuzzes the MariaDB event decoders (GTID, GTID_LIST, BINLOG_CHECKPOINT, ANNOTATE_ROWS)
//! and the GTID-state parser: any bytes decode or fail with a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outflow_mysql::mariadb;

fuzz_target!(|data: &[u8]| {
    let _ = mariadb::gtid_event(data, 1);
    let _ = mariadb::gtid_list_event(data);
    let _ = mariadb::binlog_checkpoint_event(data);
    let _ = mariadb::annotate_rows_event(data);
    let _ = mariadb::parse_gtid_state(&String::from_utf8_lossy(data));
});
