//! MariaDB binlog events that mysql_common does not decode (they arrive as unknown event
//! types with their raw body, checksum already stripped). Layouts from MariaDB's
//! "Binary log event format" documentation:
//!
//! - `GTID_EVENT` (162): `u64` sequence number, `u32` domain id, `u8` flags2; with
//!   `FL_GROUP_COMMIT_ID` (2) a `u64` commit id follows. The GTID's server id is the event
//!   header's. `FL_STANDALONE` (1): no BEGIN/XID follows (DDL, non-transactional).
//! - `GTID_LIST_EVENT` (163): `u32` whose low 28 bits count the entries, then per entry
//!   `u32` domain id, `u32` server id, `u64` sequence number.
//! - `BINLOG_CHECKPOINT_EVENT` (161): `u32` length, then the binlog file name.
//! - `ANNOTATE_ROWS_EVENT` (160): the statement text (the whole body).
//! - The compressed events of `log_bin_compress=ON` (MariaDB's "Compressed binlog"):
//!   `QUERY_COMPRESSED_EVENT` (165) is a QUERY_EVENT (2) whose statement text is
//!   compressed; `*_ROWS_COMPRESSED_EVENT_V1` (166–168) and `*_ROWS_COMPRESSED_EVENT`
//!   (169–171) are rows events v1 (23–25) and v2 (30–32) whose row images are compressed,
//!   after the uncompressed post-header (table id, flags; v2: its extra data), column
//!   count and column bitmaps. A compressed block is a header byte (bit 7 set,
//!   algorithm in bits 4–6: only 0, zlib, exists; the count of length bytes in bits
//!   0–2), the uncompressed length big-endian in that many bytes (1–4), then a zlib
//!   stream. [`uncompressed`] rebuilds the plain event body, which mysql_common then
//!   reads as any other; the event keeps its binlog offsets (the positions are those
//!   of the compressed event).
//!
//! All integers little-endian. Every parser checks lengths and returns a [`DecodeError`]
//! on short or malformed input; none panics on any bytes (property-tested).

/// MariaDB's `ANNOTATE_ROWS_EVENT`.
pub const ANNOTATE_ROWS_EVENT: u8 = 160;
/// MariaDB's `BINLOG_CHECKPOINT_EVENT`.
pub const BINLOG_CHECKPOINT_EVENT: u8 = 161;
/// MariaDB's `GTID_EVENT`.
pub const GTID_EVENT: u8 = 162;
/// MariaDB's `GTID_LIST_EVENT`.
pub const GTID_LIST_EVENT: u8 = 163;
/// MariaDB's `START_ENCRYPTION_EVENT`.
pub const START_ENCRYPTION_EVENT: u8 = 164;

/// MariaDB's `QUERY_COMPRESSED_EVENT`.
pub const QUERY_COMPRESSED_EVENT: u8 = 165;
/// The last of MariaDB's compressed rows events (`DELETE_ROWS_COMPRESSED_EVENT`).
pub const DELETE_ROWS_COMPRESSED_EVENT: u8 = 171;

/// The plain event type of a MariaDB compressed event type, if `raw_type` is one.
pub fn plain_type(raw_type: u8) -> Option<u8> {
    match raw_type {
        QUERY_COMPRESSED_EVENT => Some(2),
        // WRITE/UPDATE/DELETE_ROWS_COMPRESSED_EVENT_V1 → WRITE/UPDATE/DELETE_ROWS_EVENT_V1.
        166..=168 => Some(raw_type - 166 + 23),
        // WRITE/UPDATE/DELETE_ROWS_COMPRESSED_EVENT → WRITE/UPDATE/DELETE_ROWS_EVENT (v2).
        169..=DELETE_ROWS_COMPRESSED_EVENT => Some(raw_type - 169 + 30),
        _ => None,
    }
}

/// The largest statement or row image a compressed block may claim (MariaDB's
/// `max_allowed_packet` maximum): a larger claim is malformed, not a reason to allocate.
const MAX_UNCOMPRESSED: usize = 1 << 30;

/// Inflates one compressed block (the whole of `block`).
fn inflate(event: &'static str, block: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let malformed = |reason: String| DecodeError { event, reason };
    let (&head, rest) = block
        .split_first()
        .ok_or_else(|| short(event, 1, block.len()))?;
    if head & 0x80 == 0 {
        return Err(malformed(format!(
            "compressed block header {head:#04x} lacks the compressed flag"
        )));
    }
    let algorithm = (head >> 4) & 0x07;
    if algorithm != 0 {
        return Err(malformed(format!(
            "compression algorithm {algorithm} (only 0, zlib, is known)"
        )));
    }
    let width = usize::from(head & 0x07);
    if !(1..=4).contains(&width) {
        return Err(malformed(format!("{width} length bytes (1 to 4 expected)")));
    }
    let (length, stream) = (
        rest.get(..width)
            .ok_or_else(|| short(event, 1 + width, block.len()))?,
        &rest[width..],
    );
    let length = length
        .iter()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    if length > MAX_UNCOMPRESSED {
        return Err(malformed(format!("claims {length} uncompressed bytes")));
    }
    let mut out = Vec::with_capacity(length.min(1 << 20));
    let mut decoder = flate2::read::ZlibDecoder::new(stream);
    // One byte more than claimed tells a stream that inflates to more.
    let limit = u64::try_from(length).unwrap_or(u64::MAX).saturating_add(1);
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut decoder, limit), &mut out)
        .map_err(|e| malformed(format!("zlib: {e}")))?;
    if out.len() != length {
        return Err(malformed(format!(
            "inflates to {} bytes, its header says {length}",
            out.len()
        )));
    }
    Ok(out)
}

/// The body of the plain event that a MariaDB compressed event (type `raw_type`, body
/// `data` without the checksum) stands for: the uncompressed part kept as it is, the
/// compressed block inflated. `None` if `raw_type` is not a compressed type.
/// `query_post_header` is the format description's post-header length of QUERY_EVENT.
pub fn uncompressed(
    raw_type: u8,
    data: &[u8],
    query_post_header: usize,
) -> Result<Option<(u8, Vec<u8>)>, DecodeError> {
    let Some(plain) = plain_type(raw_type) else {
        return Ok(None);
    };
    let (name, keep) = if raw_type == QUERY_COMPRESSED_EVENT {
        const NAME: &str = "QUERY_COMPRESSED";
        // thread id (4), exec time (4), db length (1), error code (2), status vars
        // length (2), [newer fields], then status vars, db name, NUL, statement.
        if query_post_header < 13 {
            return Err(DecodeError {
                event: NAME,
                reason: format!("post-header of {query_post_header} bytes (13 at least)"),
            });
        }
        let (Some(&db_len), Some(vars_len)) = (
            data.get(8),
            data.get(11..13).map(|b| u16::from_le_bytes([b[0], b[1]])),
        ) else {
            return Err(short(NAME, 13, data.len()));
        };
        let keep = query_post_header + usize::from(vars_len) + usize::from(db_len) + 1;
        (NAME, keep)
    } else {
        const NAME: &str = "ROWS_COMPRESSED";
        // Table id (6) and flags (2); v2 adds its extra data, whose u16 length
        // counts itself.
        let mut at = 8;
        if raw_type >= 169 {
            let extra = data
                .get(8..10)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
                .ok_or_else(|| short(NAME, 10, data.len()))?;
            if extra < 2 {
                return Err(DecodeError {
                    event: NAME,
                    reason: format!("extra data length {extra} (2 at least)"),
                });
            }
            at += extra;
        }
        let mut rest = data.get(at..).ok_or_else(|| short(NAME, at, data.len()))?;
        let before = rest.len();
        let columns = crate::types::read_lenenc(&mut rest)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| DecodeError {
                event: NAME,
                reason: "no column count".into(),
            })?;
        at += before - rest.len();
        let bitmaps = if plain == 24 || plain == 31 { 2 } else { 1 };
        let bitmap = columns.div_ceil(8);
        at = bitmap
            .checked_mul(bitmaps)
            .and_then(|n| n.checked_add(at))
            .ok_or_else(|| short(NAME, usize::MAX, data.len()))?;
        (NAME, at)
    };
    let (head, block) = (
        data.get(..keep)
            .ok_or_else(|| short(name, keep, data.len()))?,
        &data[keep..],
    );
    let inflated = inflate(name, block)?;
    let mut body = Vec::with_capacity(head.len() + inflated.len());
    body.extend_from_slice(head);
    body.extend_from_slice(&inflated);
    Ok(Some((plain, body)))
}

/// A MariaDB event body that does not have the documented layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed MariaDB {event} event: {reason}")]
pub struct DecodeError {
    /// The event's name.
    pub event: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn short(event: &'static str, need: usize, have: usize) -> DecodeError {
    DecodeError {
        event,
        reason: format!("needs {need} bytes, has {have}"),
    }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    data.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
}

/// A MariaDB GTID: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MariaGtid {
    /// Replication domain.
    pub domain: u32,
    /// Server that wrote the transaction.
    pub server_id: u32,
    /// Sequence number within the domain.
    pub sequence: u64,
}

impl std::fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.sequence)
    }
}

/// A decoded `GTID_EVENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    /// The transaction's GTID.
    pub gtid: MariaGtid,
    /// `FL_STANDALONE`: the event group has no BEGIN/COMMIT (DDL, non-transactional).
    pub standalone: bool,
}

/// Decodes a `GTID_EVENT` body; `server_id` is from the event header.
pub fn gtid_event(data: &[u8], server_id: u32) -> Result<GtidEvent, DecodeError> {
    const NAME: &str = "GTID";
    let (Some(sequence), Some(domain), Some(&flags)) =
        (u64_at(data, 0), u32_at(data, 8), data.get(12))
    else {
        return Err(short(NAME, 13, data.len()));
    };
    if flags & 2 != 0 && data.len() < 21 {
        return Err(short(NAME, 21, data.len()));
    }
    Ok(GtidEvent {
        gtid: MariaGtid {
            domain,
            server_id,
            sequence,
        },
        standalone: flags & 1 != 0,
    })
}

/// Decodes a `GTID_LIST_EVENT` body.
pub fn gtid_list_event(data: &[u8]) -> Result<Vec<MariaGtid>, DecodeError> {
    const NAME: &str = "GTID_LIST";
    let count = u32_at(data, 0).ok_or_else(|| short(NAME, 4, data.len()))? & 0x0fff_ffff;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let need = count
        .checked_mul(16)
        .and_then(|n| n.checked_add(4))
        .ok_or_else(|| short(NAME, usize::MAX, data.len()))?;
    if data.len() < need {
        return Err(short(NAME, need, data.len()));
    }
    Ok((0..count)
        .filter_map(|i| {
            let at = 4 + i * 16;
            Some(MariaGtid {
                domain: u32_at(data, at)?,
                server_id: u32_at(data, at + 4)?,
                sequence: u64_at(data, at + 8)?,
            })
        })
        .collect())
}

/// Decodes a `BINLOG_CHECKPOINT_EVENT` body: the binlog file name.
pub fn binlog_checkpoint_event(data: &[u8]) -> Result<String, DecodeError> {
    const NAME: &str = "BINLOG_CHECKPOINT";
    let len = u32_at(data, 0).ok_or_else(|| short(NAME, 4, data.len()))?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let name = data
        .get(4..4usize.saturating_add(len))
        .ok_or_else(|| short(NAME, 4usize.saturating_add(len), data.len()))?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// Decodes an `ANNOTATE_ROWS_EVENT` body: the statement.
pub fn annotate_rows_event(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A MariaDB GTID position (`@@gtid_binlog_pos` / `@slave_connect_state` syntax):
/// comma-separated GTIDs, one per domain. Invalid entries are errors.
pub fn parse_gtid_state(text: &str) -> Result<Vec<MariaGtid>, DecodeError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let parts: Vec<&str> = entry.split('-').collect();
            let bad = || DecodeError {
                event: "GTID state",
                reason: format!("{entry:?} is not domain-server-sequence"),
            };
            let [domain, server, sequence] = parts.as_slice() else {
                return Err(bad());
            };
            Ok(MariaGtid {
                domain: domain.parse().map_err(|_| bad())?,
                server_id: server.parse().map_err(|_| bad())?,
                sequence: sequence.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// `state` with `gtid` applied: the entry of its domain replaced (or added).
pub fn advance_state(state: &mut Vec<MariaGtid>, gtid: MariaGtid) {
    match state.iter_mut().find(|g| g.domain == gtid.domain) {
        Some(entry) => *entry = gtid,
        None => {
            state.push(gtid);
            state.sort_by_key(|g| g.domain);
        }
    }
}

/// A GTID state as text.
pub fn format_state(state: &[MariaGtid]) -> String {
    state
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A compressed block as MariaDB writes it (fewest length bytes, zlib stream).
    fn compress(plain: &[u8]) -> Vec<u8> {
        let len = plain.len() as u32;
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count().min(3);
        let mut block = vec![0x80 | (4 - skip) as u8];
        block.extend_from_slice(&bytes[skip..]);
        let mut encoder = flate2::write::ZlibEncoder::new(block, flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, plain).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn compressed_query_events_keep_their_header_and_inflate_the_statement() {
        // Post-header: thread 7, exec time 0, db length 3, error 0, status vars 2.
        let mut head = 7u32.to_le_bytes().to_vec();
        head.extend(0u32.to_le_bytes());
        head.push(3);
        head.extend(0u16.to_le_bytes());
        head.extend(2u16.to_le_bytes());
        head.extend([0xaa, 0xbb]); // status vars
        head.extend(b"app\0");
        let statement = "INSERT INTO t VALUES ('Grüße'), ".repeat(20);
        let mut body = head.clone();
        body.extend(compress(statement.as_bytes()));
        let (plain, rebuilt) = uncompressed(QUERY_COMPRESSED_EVENT, &body, 13)
            .unwrap()
            .unwrap();
        assert_eq!(plain, 2);
        assert_eq!(&rebuilt[..head.len()], &head[..]);
        assert_eq!(&rebuilt[head.len()..], statement.as_bytes());
    }

    #[test]
    fn compressed_rows_events_inflate_only_the_row_images() {
        for (raw, plain, bitmaps, extra) in [
            (166u8, 23u8, 1usize, None),
            (167, 24, 2, None),
            (168, 25, 1, None),
            (169, 30, 1, Some(vec![2u8, 0])),
            (170, 31, 2, Some(vec![4u8, 0, 9, 9])),
            (171, 32, 1, Some(vec![2u8, 0])),
        ] {
            let mut head = vec![1, 2, 3, 4, 5, 6, 1, 0]; // table id, flags
            head.extend(extra.unwrap_or_default());
            head.push(10); // 10 columns: 2-byte bitmaps
            head.extend(std::iter::repeat_n(0xffu8, 2 * bitmaps));
            let rows: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
            let mut body = head.clone();
            body.extend(compress(&rows));
            let (got, rebuilt) = uncompressed(raw, &body, 13).unwrap().unwrap();
            assert_eq!(got, plain, "type {raw}");
            assert_eq!(&rebuilt[..head.len()], &head[..], "type {raw}");
            assert_eq!(&rebuilt[head.len()..], &rows[..], "type {raw}");
        }
        assert_eq!(uncompressed(30, &[1, 2, 3], 13).unwrap(), None);
    }

    #[test]
    fn malformed_compressed_blocks_are_errors() {
        let head = [1u8, 2, 3, 4, 5, 6, 1, 0, 1, 0xff];
        let good = compress(b"row image bytes");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not flagged", [&[0x01u8][..], &good[1..]].concat()),
            ("algorithm 1", [&[0x91u8][..], &good[1..]].concat()),
            ("zero length bytes", [&[0x80u8][..], &good[1..]].concat()),
            ("claims more", {
                let mut b = good.clone();
                b[1] += 1;
                b
            }),
            ("claims less", {
                let mut b = good.clone();
                b[1] -= 1;
                b
            }),
            ("truncated stream", good[..good.len() - 3].to_vec()),
            ("empty", vec![]),
        ];
        for (what, block) in cases {
            let body = [&head[..], &block].concat();
            assert!(uncompressed(166, &body, 13).is_err(), "{what}");
        }
        assert!(uncompressed(QUERY_COMPRESSED_EVENT, &[0; 12], 13).is_err());
        assert!(uncompressed(170, &[1, 2, 3, 4, 5, 6, 1, 0, 1, 0], 13).is_err());
    }

    #[test]
    fn gtid_events_decode_from_their_documented_layout() {
        // seq 42, domain 0, flags2 = STANDALONE | GROUP_COMMIT_ID, commit id 7.
        let mut body = 42u64.to_le_bytes().to_vec();
        body.extend(0u32.to_le_bytes());
        body.push(0x03);
        body.extend(7u64.to_le_bytes());
        let event = gtid_event(&body, 1).unwrap();
        assert_eq!(event.gtid.to_string(), "0-1-42");
        assert!(event.standalone);
        assert!(gtid_event(&body[..12], 1).is_err());
        assert!(
            gtid_event(&body[..15], 1).is_err(),
            "commit id announced but missing"
        );
    }

    #[test]
    fn gtid_lists_checkpoints_and_states() {
        let mut body = 2u32.to_le_bytes().to_vec();
        for (d, s, q) in [(0u32, 1u32, 10u64), (1, 2, 3)] {
            body.extend(d.to_le_bytes());
            body.extend(s.to_le_bytes());
            body.extend(q.to_le_bytes());
        }
        let list = gtid_list_event(&body).unwrap();
        assert_eq!(format_state(&list), "0-1-10,1-2-3");
        assert!(gtid_list_event(&body[..20]).is_err());
        let mut checkpoint = 10u32.to_le_bytes().to_vec();
        checkpoint.extend(b"bin.000001");
        assert_eq!(binlog_checkpoint_event(&checkpoint).unwrap(), "bin.000001");
        assert!(binlog_checkpoint_event(&checkpoint[..8]).is_err());
        let mut state = parse_gtid_state("0-1-10, 1-2-3").unwrap();
        advance_state(
            &mut state,
            MariaGtid {
                domain: 1,
                server_id: 1,
                sequence: 4,
            },
        );
        advance_state(
            &mut state,
            MariaGtid {
                domain: 2,
                server_id: 1,
                sequence: 1,
            },
        );
        assert_eq!(format_state(&state), "0-1-10,1-1-4,2-1-1");
        assert!(parse_gtid_state("0-1").is_err());
        assert!(parse_gtid_state("").unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn compressed_events_never_panic(raw in 165u8..=171, data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = uncompressed(raw, &data, 13);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = gtid_event(&data, 1);
            let _ = gtid_list_event(&data);
            let _ = binlog_checkpoint_event(&data);
            let _ = annotate_rows_event(&data);
            let _ = parse_gtid_state(&String::from_utf8_lossy(&data));
        }
    }
}
