//! Fuzz target `ddl`: see `outflow_mysql::fuzzing::ddl`; any bytes must be handled
//! without a panic. Its corpus is replayed by the crate's tests (`fuzz_corpus`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outflow_mysql::fuzzing::ddl(data));
