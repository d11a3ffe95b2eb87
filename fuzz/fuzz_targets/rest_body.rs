//! Fuzz target `rest_body`: see `outflow::fuzzing::rest_body`. Its corpus is replayed by the
//! tests (`tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outflow::fuzzing::rest_body(data));
