//! Fuzzes the pgoutput decoder: any bytes, in and out of a stream, must decode or fail
//! with a typed error — never panic, never allocate past the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outflow_postgres::pgoutput::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new();
    // The first byte chooses whether we are inside a streamed chunk.
    if let Some((&first, rest)) = data.split_first() {
        if first & 1 == 1 {
            let _ = decoder.decode(&[b'S', 0, 0, 0, 1, 1]);
        }
        for message in rest.split(|&b| b == 0xFF) {
            let _ = decoder.decode(message);
        }
    }
});
