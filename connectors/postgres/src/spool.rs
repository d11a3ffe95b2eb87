//! On-disk spool of a streamed (protocol v2) in-progress transaction.
//!
//! With `streaming` on, Postgres sends a large transaction in chunks while it is still
//! running, before anyone knows whether it commits. Its changes cannot be emitted yet (an
//! event's position is its commit LSN, and an abort must leave no trace), and holding them
//! in memory is what streaming exists to avoid. So each chunk's messages are appended, raw,
//! to a file, and replayed in order at Stream Commit. A Stream Abort of a subtransaction
//! marks its xid so replay skips its messages; an abort of the whole transaction drops the
//! spool.
//!
//! The file is unlinked as soon as it is created: it vanishes when the spool is dropped or
//! the process dies, whatever the reason, so nothing is left behind. Memory use is one
//! write buffer and one record, whatever the transaction's size.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::position::Lsn;

/// Size of the spool's write and read buffers.
const BUFFER: usize = 1 << 20;

/// The spooled messages of one streamed top-level transaction.
#[derive(Debug)]
pub struct TransactionSpool {
    writer: BufWriter<File>,
    aborted: HashSet<u32>,
    messages: u64,
    bytes: u64,
    first_wal_start: Option<Lsn>,
}

/// One spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledMessage {
    /// The (sub)transaction the change belongs to.
    pub xid: u32,
    /// The XLogData's WAL start (the change's LSN).
    pub wal_start: Lsn,
    /// The pgoutput message, as received (decode it in stream mode).
    pub data: Vec<u8>,
}

impl TransactionSpool {
    /// An empty spool in a new anonymous file under `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let file = tempfile::tempfile_in(dir)?;
        Ok(Self {
            writer: BufWriter::with_capacity(BUFFER, file),
            aborted: HashSet::new(),
            messages: 0,
            bytes: 0,
            first_wal_start: None,
        })
    }

    /// Appends a message of (sub)transaction `xid`.
    pub fn append(&mut self, xid: u32, wal_start: Lsn, data: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(data.len())
            .map_err(|_| std::io::Error::other("pgoutput message larger than 4 GiB"))?;
        self.writer.write_all(&len.to_be_bytes())?;
        self.writer.write_all(&xid.to_be_bytes())?;
        self.writer.write_all(&wal_start.0.to_be_bytes())?;
        self.writer.write_all(data)?;
        // Messages that stand for no WAL record (relation descriptions) come with 0.
        if wal_start.0 != 0 {
            self.first_wal_start.get_or_insert(wal_start);
        }
        self.messages += 1;
        self.bytes += u64::from(len) + 16;
        Ok(())
    }

    /// A subtransaction rolled back: its messages are skipped at replay.
    pub fn abort_subtransaction(&mut self, subxid: u32) {
        self.aborted.insert(subxid);
    }

    /// Messages spooled so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The WAL start of the first message spooled: where the transaction's first record
    /// stands, which names it (Debezium's BEGIN of a transaction sent at commit).
    pub fn first_wal_start(&self) -> Option<Lsn> {
        self.first_wal_start
    }

    /// Bytes spooled so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reads the messages back in order, without those of aborted subtransactions.
    pub fn replay(self) -> std::io::Result<SpoolReader> {
        let mut file = self.writer.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(SpoolReader {
            reader: BufReader::with_capacity(BUFFER, file),
            aborted: self.aborted,
            remaining: self.messages,
        })
    }
}

/// Iterates a spool's messages.
#[derive(Debug)]
pub struct SpoolReader {
    reader: BufReader<File>,
    aborted: HashSet<u32>,
    remaining: u64,
}

impl SpoolReader {
    /// Reads the next message of a committed (sub)transaction into `message`, reusing its
    /// allocation; `false` at the end.
    pub fn next_into(&mut self, message: &mut SpooledMessage) -> std::io::Result<bool> {
        while self.remaining > 0 {
            self.remaining -= 1;
            let mut header = [0u8; 16];
            self.reader.read_exact(&mut header)?;
            let (len, rest) = header.split_at(4);
            let (xid, lsn) = rest.split_at(4);
            let len = u32::from_be_bytes(len.try_into().map_err(std::io::Error::other)?) as usize;
            message.xid = u32::from_be_bytes(xid.try_into().map_err(std::io::Error::other)?);
            message.wal_start = Lsn(u64::from_be_bytes(
                lsn.try_into().map_err(std::io::Error::other)?,
            ));
            message.data.resize(len, 0);
            self.reader.read_exact(&mut message.data)?;
            if !self.aborted.contains(&message.xid) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_order_without_aborted_subtransactions() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = TransactionSpool::create(dir.path()).unwrap();
        spool.append(10, Lsn(1), b"a").unwrap();
        spool.append(11, Lsn(2), b"bb").unwrap();
        spool.append(10, Lsn(3), b"").unwrap();
        spool.append(12, Lsn(4), b"dddd").unwrap();
        spool.abort_subtransaction(11);
        assert_eq!(spool.messages(), 4);
        // The file is anonymous: nothing in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut reader = spool.replay().unwrap();
        let mut message = SpooledMessage {
            xid: 0,
            wal_start: Lsn(0),
            data: Vec::new(),
        };
        let mut seen = Vec::new();
        while reader.next_into(&mut message).unwrap() {
            seen.push(message.clone());
        }
        let seen: Vec<(u32, u64, &[u8])> = seen
            .iter()
            .map(|m| (m.xid, m.wal_start.0, m.data.as_slice()))
            .collect();
        assert_eq!(
            seen,
            [(10, 1, &b"a"[..]), (10, 3, &b""[..]), (12, 4, &b"dddd"[..])]
        );
    }
}
