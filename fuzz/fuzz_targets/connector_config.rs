//! Fuzz target `connector_config`: see `outflow::fuzzing::connector_config`. Its corpus is replayed by the
//! tests (`tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outflow::fuzzing::connector_config(data));
