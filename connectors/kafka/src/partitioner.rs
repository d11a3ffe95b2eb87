//! Partition choice as the Java client's default partitioner makes it for keyed records,
//! so a record lands in the partition Debezium's would: `murmur2(key) & 0x7fffffff % n`.
//!
//! Records without a key go to a partition derived from their source position: spread
//! over the partitions, and the same on every retry, which the exactly-once tail check
//! needs (it looks for a record in the partition it would be written to).

use outflow_core::SourcePosition;

/// Kafka's `Utils.murmur2` (32-bit MurmurHash2, seed `0x9747b28c`), as a signed int.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    // Java hashes `int length`; keys are far below 2 GiB.
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a record among `partitions` (at least 1).
pub fn partition(key: Option<&[u8]>, position: &SourcePosition, partitions: i32) -> i32 {
    let partitions = partitions.max(1);
    match key {
        Some(key) => (murmur2(key) & 0x7fff_ffff) % partitions,
        None => (murmur2(position.to_json().as_bytes()) & 0x7fff_ffff) % partitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafka_utils_murmur2() {
        // Kafka's UtilsTest.testMurmur2 vectors.
        for (input, expected) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
    }
}
