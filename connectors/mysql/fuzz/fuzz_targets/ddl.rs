//! Fuzzes the DDL head reader: any statement text yields table changes or none, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outflow_mysql::ddl::table_changes;

fuzz_target!(|data: &[u8]| {
    let _ = table_changes(&String::from_utf8_lossy(data), "db");
});
