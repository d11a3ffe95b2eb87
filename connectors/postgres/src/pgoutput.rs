//! Decoder of the `pgoutput` logical replication protocol (versions 1 and 2).
//!
//! Every message of the protocol is decoded into a [`Message`] that borrows from the
//! input (column values are slices of the WAL data, never copied here). The decoder is
//! stateful only in one respect: between Stream Start and Stream Stop (protocol v2
//! streaming of in-progress transactions) data messages carry the transaction id, and
//! the decoder tracks that to know whether to expect it.
//!
//! Malformed input — truncated, unknown tags, lengths past the end, invalid UTF-8 in names
//! — is a [`DecodeError`], never a panic; `fuzz/fuzz_targets/pgoutput.rs` holds the decoder
//! to that, and a property test runs the same check in the normal suite.
//!
//! Reference: PostgreSQL documentation, "Logical Replication Message Formats" (protocol
//! versions 1–2; two-phase messages of version 3 are reported as unsupported because
//! outflow never asks for them).

use std::fmt;

/// A decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message ended before a field.
    #[error("pgoutput message {tag:?} truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Message tag.
        tag: char,
        /// Where the field started.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// A tag outflow does not know.
    #[error("unknown pgoutput message tag {0:?}")]
    UnknownTag(char),
    /// A message outflow never requests (two-phase commit, protocol v3+).
    #[error("unsupported pgoutput message {0:?} (outflow does not enable two-phase decoding)")]
    Unsupported(char),
    /// A tuple marker or column kind that the protocol does not define.
    #[error("pgoutput message {tag:?}: invalid {what} byte {byte:#04x} at offset {offset}")]
    InvalidByte {
        /// Message tag.
        tag: char,
        /// What was expected.
        what: &'static str,
        /// The byte found.
        byte: u8,
        /// Where.
        offset: usize,
    },
    /// A name that is not valid UTF-8 or not NUL-terminated.
    #[error("pgoutput message {tag:?}: invalid string at offset {offset}")]
    InvalidString {
        /// Message tag.
        tag: char,
        /// Where.
        offset: usize,
    },
    /// An empty message.
    #[error("empty pgoutput message")]
    Empty,
    /// Bytes left after a complete message.
    #[error("pgoutput message {tag:?}: {extra} unexpected bytes at the end")]
    TrailingBytes {
        /// Message tag.
        tag: char,
        /// How many.
        extra: usize,
    },
}

/// One column of a tuple.
#[derive(Clone, PartialEq, Eq)]
pub enum ColumnData<'a> {
    /// SQL NULL.
    Null,
    /// An unchanged TOAST value (not sent).
    UnchangedToast,
    /// Text format.
    Text(&'a [u8]),
    /// Binary format.
    Binary(&'a [u8]),
}

impl fmt::Debug for ColumnData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("Null"),
            Self::UnchangedToast => f.write_str("UnchangedToast"),
            Self::Text(b) => write!(f, "Text({:?})", String::from_utf8_lossy(b)),
            Self::Binary(b) => write!(f, "Binary({} bytes)", b.len()),
        }
    }
}

/// A tuple: one entry per column of the relation (except generated columns).
pub type Tuple<'a> = Vec<ColumnData<'a>>;

/// Which old tuple an update or delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldTupleKind {
    /// `K`: the replica identity key columns only (others null).
    Key,
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Full,
}

/// A column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// Part of the replica identity key.
    pub is_key: bool,
    /// Column name.
    pub name: &'a str,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (`atttypmod`), -1 when none.
    pub type_modifier: i32,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// `B`.
    Begin {
        /// Final (commit) LSN of the transaction.
        final_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_time: i64,
        /// Transaction id.
        xid: u32,
    },
    /// `C`.
    Commit {
        /// Flags (unused).
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: u64,
        /// End LSN of the transaction.
        end_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_time: i64,
    },
    /// `O`.
    Origin {
        /// Commit LSN on the origin server.
        commit_lsn: u64,
        /// Origin name.
        name: &'a str,
    },
    /// `R`.
    Relation {
        /// Transaction id (inside a stream only).
        xid: Option<u32>,
        /// Relation OID.
        relation_id: u32,
        /// Schema (empty for pg_catalog).
        namespace: &'a str,
        /// Table name.
        name: &'a str,
        /// `relreplident`: `d` default, `n` nothing, `f` full, `i` index.
        replica_identity: u8,
        /// Columns.
        columns: Vec<RelationColumn<'a>>,
    },
    /// `Y`.
    Type {
        /// Transaction id (inside a stream only).
        xid: Option<u32>,
        /// Type OID.
        type_oid: u32,
        /// Schema.
        namespace: &'a str,
        /// Type name.
        name: &'a str,
    },
    /// `I`.
    Insert {
        /// Transaction id (inside a stream only).
        xid: Option<u32>,
        /// Relation OID.
        relation_id: u32,
        /// The new row.
        new: Tuple<'a>,
    },
    /// `U`.
    Update {
        /// Transaction id (inside a stream only).
        xid: Option<u32>,
        /// Relation OID.
        relation_id: u32,
        /// The old row, if sent.
        old: Option<(OldTupleKind, Tuple<'a>)>,
        /// The new row.
        new: Tuple<'a>,
    },
    /// `D`.
    Delete {
        /// Transaction id (inside a stream only).
        xid: Option<u32>,
        /// Relation OID.
        relation_id: u32,
        /// The old row (key or full).
        old: (OldTupleKind, Tuple<'a>),
    },
    /// `T`.
    Truncate {
        /// Transaction id (inside a stream only).
        xid: Option<u32>,
        /// Bit 1: CASCADE; bit 2: RESTART IDENTITY.
        options: u8,
        /// Relation OIDs.
        relation_ids: Vec<u32>,
    },
    /// `M`: a logical decoding message (`pg_logical_emit_message`).
    LogicalMessage {
        /// Transaction id (inside a stream only).
        xid: Option<u32>,
        /// Emitted inside a transaction.
        transactional: bool,
        /// LSN of the message.
        lsn: u64,
        /// Prefix.
        prefix: &'a str,
        /// Content.
        content: &'a [u8],
    },
    /// `S` (v2): a streamed chunk of an in-progress transaction starts.
    StreamStart {
        /// Transaction id.
        xid: u32,
        /// First chunk of this transaction.
        first_segment: bool,
    },
    /// `E` (v2): the chunk ends.
    StreamStop,
    /// `c` (v2): a streamed transaction committed.
    StreamCommit {
        /// Transaction id.
        xid: u32,
        /// Flags (unused).
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: u64,
        /// End LSN.
        end_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_time: i64,
    },
    /// `A` (v2): a streamed (sub)transaction aborted.
    StreamAbort {
        /// Transaction id.
        xid: u32,
        /// Subtransaction id (equal to `xid` when the whole transaction aborted).
        subxid: u32,
    },
}

struct Cursor<'a> {
    tag: char,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(DecodeError::Truncated {
                tag: self.tag,
                offset: self.pos,
                needed: n.saturating_sub(self.data.len().saturating_sub(self.pos)),
            })?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let rest = &self.data[start..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::InvalidString {
                tag: self.tag,
                offset: start,
            })?;
        let text = std::str::from_utf8(&rest[..len]).map_err(|_| DecodeError::InvalidString {
            tag: self.tag,
            offset: start,
        })?;
        self.pos = start + len + 1;
        Ok(text)
    }

    fn tuple(&mut self) -> Result<Tuple<'a>, DecodeError> {
        let count = usize::from(self.u16()?);
        // Each column needs at least one byte: refuse counts the input cannot hold before
        // allocating for them.
        if count > self.data.len().saturating_sub(self.pos) {
            return Err(DecodeError::Truncated {
                tag: self.tag,
                offset: self.pos,
                needed: count,
            });
        }
        let mut columns = Vec::with_capacity(count);
        for _ in 0..count {
            let offset = self.pos;
            let column = match self.u8()? {
                b'n' => ColumnData::Null,
                b'u' => ColumnData::UnchangedToast,
                kind @ (b't' | b'b') => {
                    let len = self.i32()?;
                    let len = usize::try_from(len).map_err(|_| DecodeError::InvalidByte {
                        tag: self.tag,
                        what: "column length",
                        byte: 0xff,
                        offset,
                    })?;
                    let bytes = self.take(len)?;
                    if kind == b't' {
                        ColumnData::Text(bytes)
                    } else {
                        ColumnData::Binary(bytes)
                    }
                }
                byte => {
                    return Err(DecodeError::InvalidByte {
                        tag: self.tag,
                        what: "column kind",
                        byte,
                        offset,
                    });
                }
            };
            columns.push(column);
        }
        Ok(columns)
    }

    fn expect_new_tuple(&mut self) -> Result<Tuple<'a>, DecodeError> {
        let offset = self.pos;
        match self.u8()? {
            b'N' => self.tuple(),
            byte => Err(DecodeError::InvalidByte {
                tag: self.tag,
                what: "tuple marker",
                byte,
                offset,
            }),
        }
    }

    fn finish<T>(&self, message: T) -> Result<T, DecodeError> {
        match self.data.len() - self.pos {
            0 => Ok(message),
            extra => Err(DecodeError::TrailingBytes {
                tag: self.tag,
                extra,
            }),
        }
    }
}

/// Decodes pgoutput messages, tracking whether it is inside a streamed chunk.
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    in_stream: bool,
}

impl Decoder {
    /// A decoder outside any stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder inside a streamed chunk, for messages replayed from a spool.
    pub fn streaming() -> Self {
        Self { in_stream: true }
    }

    /// True between Stream Start and Stream Stop.
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Decodes one message (the payload of one XLogData).
    pub fn decode<'a>(&mut self, data: &'a [u8]) -> Result<Message<'a>, DecodeError> {
        let (&tag, _) = data.split_first().ok_or(DecodeError::Empty)?;
        let tag = char::from(tag);
        let mut c = Cursor { tag, data, pos: 1 };
        let in_stream = self.in_stream;
        let xid = |c: &mut Cursor<'a>| -> Result<Option<u32>, DecodeError> {
            if in_stream {
                c.u32().map(Some)
            } else {
                Ok(None)
            }
        };
        let message = match tag {
            'B' => Message::Begin {
                final_lsn: c.u64()?,
                commit_time: c.i64()?,
                xid: c.u32()?,
            },
            'C' => Message::Commit {
                flags: c.u8()?,
                commit_lsn: c.u64()?,
                end_lsn: c.u64()?,
                commit_time: c.i64()?,
            },
            'O' => Message::Origin {
                commit_lsn: c.u64()?,
                name: c.string()?,
            },
            'R' => {
                let xid = xid(&mut c)?;
                let relation_id = c.u32()?;
                let namespace = c.string()?;
                let name = c.string()?;
                let replica_identity = c.u8()?;
                let count = usize::from(c.u16()?);
                if count > data.len() {
                    return Err(DecodeError::Truncated {
                        tag,
                        offset: c.pos,
                        needed: count,
                    });
                }
                let mut columns = Vec::with_capacity(count);
                for _ in 0..count {
                    let flags = c.u8()?;
                    columns.push(RelationColumn {
                        is_key: flags & 1 == 1,
                        name: c.string()?,
                        type_oid: c.u32()?,
                        type_modifier: c.i32()?,
                    });
                }
                Message::Relation {
                    xid,
                    relation_id,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                }
            }
            'Y' => Message::Type {
                xid: xid(&mut c)?,
                type_oid: c.u32()?,
                namespace: c.string()?,
                name: c.string()?,
            },
            'I' => {
                let xid = xid(&mut c)?;
                let relation_id = c.u32()?;
                Message::Insert {
                    xid,
                    relation_id,
                    new: c.expect_new_tuple()?,
                }
            }
            'U' => {
                let xid = xid(&mut c)?;
                let relation_id = c.u32()?;
                let offset = c.pos;
                let (old, new) = match c.u8()? {
                    b'K' => (Some((OldTupleKind::Key, c.tuple()?)), c.expect_new_tuple()?),
                    b'O' => (
                        Some((OldTupleKind::Full, c.tuple()?)),
                        c.expect_new_tuple()?,
                    ),
                    b'N' => (None, c.tuple()?),
                    byte => {
                        return Err(DecodeError::InvalidByte {
                            tag,
                            what: "tuple marker",
                            byte,
                            offset,
                        });
                    }
                };
                Message::Update {
                    xid,
                    relation_id,
                    old,
                    new,
                }
            }
            'D' => {
                let xid = xid(&mut c)?;
                let relation_id = c.u32()?;
                let offset = c.pos;
                let kind = match c.u8()? {
                    b'K' => OldTupleKind::Key,
                    b'O' => OldTupleKind::Full,
                    byte => {
                        return Err(DecodeError::InvalidByte {
                            tag,
                            what: "tuple marker",
                            byte,
                            offset,
                        });
                    }
                };
                Message::Delete {
                    xid,
                    relation_id,
                    old: (kind, c.tuple()?),
                }
            }
            'T' => {
                let xid = xid(&mut c)?;
                let count = usize::try_from(c.u32()?).unwrap_or(usize::MAX);
                let options = c.u8()?;
                if count > data.len() / 4 {
                    return Err(DecodeError::Truncated {
                        tag,
                        offset: c.pos,
                        needed: count.saturating_mul(4),
                    });
                }
                let relation_ids = (0..count).map(|_| c.u32()).collect::<Result<_, _>>()?;
                Message::Truncate {
                    xid,
                    options,
                    relation_ids,
                }
            }
            'M' => {
                let xid = xid(&mut c)?;
                let transactional = c.u8()? & 1 == 1;
                let lsn = c.u64()?;
                let prefix = c.string()?;
                let len = usize::try_from(c.u32()?).unwrap_or(usize::MAX);
                Message::LogicalMessage {
                    xid,
                    transactional,
                    lsn,
                    prefix,
                    content: c.take(len)?,
                }
            }
            'S' => {
                let message = Message::StreamStart {
                    xid: c.u32()?,
                    first_segment: c.u8()? == 1,
                };
                let message = c.finish(message)?;
                self.in_stream = true;
                return Ok(message);
            }
            'E' => {
                let message = c.finish(Message::StreamStop)?;
                self.in_stream = false;
                return Ok(message);
            }
            'c' => Message::StreamCommit {
                xid: c.u32()?,
                flags: c.u8()?,
                commit_lsn: c.u64()?,
                end_lsn: c.u64()?,
                commit_time: c.i64()?,
            },
            'A' => {
                let message = Message::StreamAbort {
                    xid: c.u32()?,
                    subxid: c.u32()?,
                };
                // Protocol v4 (parallel apply) appends abort LSN and time; accept and skip.
                if data.len() - c.pos == 16 {
                    c.take(16)?;
                }
                message
            }
            'b' | 'P' | 'K' | 'r' | 'p' => return Err(DecodeError::Unsupported(tag)),
            other => return Err(DecodeError::UnknownTag(other)),
        };
        c.finish(message)
    }
}

/// Microseconds between 1970-01-01 and 2000-01-01 (the Postgres epoch).
pub const POSTGRES_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// A Postgres timestamp (µs since 2000-01-01) as µs since the Unix epoch.
pub fn unix_micros(postgres_micros: i64) -> i64 {
    postgres_micros.saturating_add(POSTGRES_EPOCH_OFFSET_US)
}

#[cfg(test)]
mod tests;
