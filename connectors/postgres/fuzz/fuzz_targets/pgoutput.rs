//! Fuzz target `pgoutput`: see `outflow_postgres::fuzzing::pgoutput`. Its corpus is
//! replayed by the crate's tests (`fuzz_corpus`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outflow_postgres::fuzzing::pgoutput(data));
