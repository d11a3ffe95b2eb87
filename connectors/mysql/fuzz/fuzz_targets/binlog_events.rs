//! Fuzzes the binlog event path as the stream runs it ([`outflow_mysql::fuzzing`]): bytes
//! read as v4 events by mysql_common's reader with the source's guards, bodies decoded,
//! rows turned into values with the TABLE_MAP's shape; and the GTID texts parsed.
//! Anything may fail with an error; nothing may panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outflow_mysql::gtid::{MariaDbGtidPosition, MySqlGtidSet};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = MySqlGtidSet::parse(&text);
    let _ = MariaDbGtidPosition::parse(&text);
    outflow_mysql::fuzzing::decode_all(data);
});
