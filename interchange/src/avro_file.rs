//! Avro object container files (Avro 1.11 spec, "Object Container Files").
//!
//! Layout: the magic `Obj\x01`; the file metadata, an Avro `map<bytes>` holding
//! `avro.schema` (the writer schema, JSON) and `avro.codec`; a 16-byte sync marker; then
//! blocks, each `long` object count, `long` byte size, the (compressed) objects, and the
//! sync marker. Objects are encoded with core's Avro binary encoder, the one the Kafka
//! sink uses, so a lake file and a Kafka record of the same event hold the same bytes
//! after the header. Blocks are cut at [`BLOCK_BYTES`] of encoded data.
//!
//! Codecs: `null`, `deflate` (raw RFC 1951 data), `snappy` (each block followed by the
//! big-endian CRC-32 of its uncompressed bytes).

use std::io::Write;

use crate::connect::{ConnectSchema, Datum};
use crate::encoding::EncodeError;
use crate::encoding::avro;

/// Encoded bytes after which a block is written out.
pub const BLOCK_BYTES: usize = 64 * 1024;

/// Compression of Avro blocks (`avro.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvroCodec {
    /// No compression.
    Null,
    /// Raw deflate.
    Deflate,
    /// Snappy with a CRC-32 per block.
    Snappy,
}

impl AvroCodec {
    /// The name written in `avro.codec`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Deflate => "deflate",
            Self::Snappy => "snappy",
        }
    }
}

/// Appends an Avro `long` (zig-zag varint).
pub fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, i64::try_from(bytes.len()).unwrap_or(i64::MAX));
    out.extend_from_slice(bytes);
}

/// The header of a container file: magic, metadata, sync marker.
pub fn header(schema_json: &str, codec: AvroCodec, sync: [u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(schema_json.len() + 64);
    out.extend_from_slice(b"Obj\x01");
    write_long(&mut out, 2);
    write_bytes(&mut out, b"avro.codec");
    write_bytes(&mut out, codec.name().as_bytes());
    write_bytes(&mut out, b"avro.schema");
    write_bytes(&mut out, schema_json.as_bytes());
    write_long(&mut out, 0);
    out.extend_from_slice(&sync);
    out
}

/// Builds the blocks of one container file.
#[derive(Debug)]
pub struct AvroBlocks {
    codec: AvroCodec,
    sync: [u8; 16],
    pending: Vec<u8>,
    count: i64,
    compressed: Vec<u8>,
}

impl AvroBlocks {
    /// Blocks with `codec`, ended by `sync`.
    pub fn new(codec: AvroCodec, sync: [u8; 16]) -> Self {
        Self {
            codec,
            sync,
            pending: Vec::with_capacity(BLOCK_BYTES + 4096),
            count: 0,
            compressed: Vec::new(),
        }
    }

    /// Encodes one object into the open block.
    pub fn append(&mut self, schema: &ConnectSchema, datum: &Datum) -> Result<(), EncodeError> {
        let mark = self.pending.len();
        if let Err(e) = avro::encode(schema, datum, &mut self.pending) {
            self.pending.truncate(mark);
            return Err(e);
        }
        self.count += 1;
        Ok(())
    }

    /// Whether the open block is big enough to be written out.
    pub fn block_full(&self) -> bool {
        self.pending.len() >= BLOCK_BYTES
    }

    /// Writes the open block (if it holds objects) to `out`; returns the bytes written.
    pub fn write_block(&mut self, out: &mut impl Write) -> std::io::Result<usize> {
        if self.count == 0 {
            return Ok(0);
        }
        let data: &[u8] = match self.codec {
            AvroCodec::Null => &self.pending,
            AvroCodec::Deflate => {
                self.compressed.clear();
                let mut encoder = flate2::write::DeflateEncoder::new(
                    std::mem::take(&mut self.compressed),
                    flate2::Compression::fast(),
                );
                encoder.write_all(&self.pending)?;
                self.compressed = encoder.finish()?;
                &self.compressed
            }
            AvroCodec::Snappy => {
                let bound = snap::raw::max_compress_len(self.pending.len());
                self.compressed.resize(bound + 4, 0);
                let n = snap::raw::Encoder::new()
                    .compress(&self.pending, &mut self.compressed)
                    .map_err(std::io::Error::other)?;
                let crc = crc32fast::hash(&self.pending);
                self.compressed.truncate(n);
                self.compressed.extend_from_slice(&crc.to_be_bytes());
                &self.compressed
            }
        };
        let mut head = Vec::with_capacity(20);
        write_long(&mut head, self.count);
        write_long(&mut head, i64::try_from(data.len()).unwrap_or(i64::MAX));
        out.write_all(&head)?;
        out.write_all(data)?;
        out.write_all(&self.sync)?;
        let written = head.len() + data.len() + self.sync.len();
        self.pending.clear();
        self.count = 0;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_are_zigzag_varints() {
        let cases: [(i64, &[u8]); 6] = [
            (0, &[0]),
            (-1, &[1]),
            (1, &[2]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (
                i64::MIN,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            write_long(&mut out, value);
            assert_eq!(out, bytes, "{value}");
        }
    }
}
