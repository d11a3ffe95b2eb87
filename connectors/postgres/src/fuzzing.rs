//! Entry points for fuzzing: the pgoutput decoder over arbitrary bytes, shared by the
//! `pgoutput` cargo-fuzz target and the replay of its corpus in the tests.

use crate::pgoutput::Decoder;

/// The `pgoutput` fuzz target: the first byte chooses whether decoding happens inside a
/// streamed chunk; the rest is split into messages at 0xFF bytes. Any bytes must decode
/// or fail with a typed error: never panic, never allocate past the input's size.
pub fn pgoutput(data: &[u8]) {
    let mut decoder = Decoder::new();
    if let Some((&first, rest)) = data.split_first() {
        if first & 1 == 1 {
            let _ = decoder.decode(&[b'S', 0, 0, 0, 1, 1]);
        }
        for message in rest.split(|&b| b == 0xFF) {
            let _ = decoder.decode(message);
        }
    }
}
