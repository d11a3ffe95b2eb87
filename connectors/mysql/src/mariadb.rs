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
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = gtid_event(&data, 1);
            let _ = gtid_list_event(&data);
            let _ = binlog_checkpoint_event(&data);
            let _ = annotate_rows_event(&data);
            let _ = parse_gtid_state(&String::from_utf8_lossy(&data));
        }
    }
}
