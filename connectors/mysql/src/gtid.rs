//! GTID bookkeeping for exact resume by GTID.
//!
//! A stored binlog position carries, in `gtids`, the GTIDs of every transaction completed
//! *before* the position's own transaction. A restart asks the server for everything
//! after that set, so the server sends the interrupted transaction again, from its first
//! event; the `event`/`row` counters of the position then let the pipeline drop what was
//! already delivered (as Debezium's `gtids` + `event` + `row` offsets do).
//!
//! Two shapes, one per server family:
//! - MariaDB keeps a *GTID position*: per replication domain, the last `domain-server-seq`
//!   applied (`@@gtid_binlog_pos`, `BINLOG_GTID_POS(file, pos)`), written
//!   comma-separated. A resume sets `@slave_connect_state` to it before the dump.
//! - MySQL keeps a *GTID set*: per source UUID (and tag, MySQL 8.4), intervals of
//!   transaction numbers (`uuid:1-5:7-9`), as in `@@gtid_executed`. A resume sends it in
//!   `COM_BINLOG_DUMP_GTID`.
//!
//! Both parsers take text from the offset store or the server and return a typed error
//! for anything they do not understand.

use std::collections::BTreeMap;
use std::fmt;

/// A GTID text that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid GTID {what} {text:?}: {reason}")]
pub struct GtidError {
    what: &'static str,
    text: String,
    reason: &'static str,
}

fn invalid(what: &'static str, text: &str, reason: &'static str) -> GtidError {
    GtidError {
        what,
        text: text.to_owned(),
        reason,
    }
}

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaDbGtid {
    /// Replication domain.
    pub domain: u32,
    /// Server that wrote the transaction.
    pub server: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

impl MariaDbGtid {
    /// Parses `domain-server-seq`.
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let mut parts = text.trim().splitn(3, '-');
        let mut next = || {
            parts
                .next()
                .ok_or_else(|| invalid("", text, "expected domain-server-seq"))
        };
        let domain = next()?
            .parse()
            .map_err(|_| invalid("", text, "the domain is not a number"))?;
        let server = next()?
            .parse()
            .map_err(|_| invalid("", text, "the server id is not a number"))?;
        let seq = next()?
            .parse()
            .map_err(|_| invalid("", text, "the sequence is not a number"))?;
        Ok(Self {
            domain,
            server,
            seq,
        })
    }
}

impl fmt::Display for MariaDbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// MariaDB's GTID position: the last GTID of every domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaDbGtidPosition {
    domains: BTreeMap<u32, MariaDbGtid>,
}

impl MariaDbGtidPosition {
    /// Parses a comma-separated list (`0-1-100,1-2-7`); empty text is the empty position.
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let mut position = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid = MariaDbGtid::parse(part)
                .map_err(|_| invalid("position", text, "expected domain-server-seq,…"))?;
            if position.domains.insert(gtid.domain, gtid).is_some() {
                return Err(invalid("position", text, "a domain appears twice"));
            }
        }
        Ok(position)
    }

    /// Records a completed transaction: it becomes its domain's last GTID.
    pub fn apply(&mut self, gtid: MariaDbGtid) {
        self.domains.insert(gtid.domain, gtid);
    }

    /// True when no domain has a GTID.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

impl fmt::Display for MariaDbGtidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

/// MySQL's GTID set: per source (`uuid` or `uuid:tag`), sorted disjoint intervals of
/// transaction numbers, each `[start, end]` inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MySqlGtidSet {
    sources: BTreeMap<String, Vec<(u64, u64)>>,
}

impl MySqlGtidSet {
    /// Parses `uuid:1-5:7,uuid2:tag:1-3` (whitespace and newlines between members are
    /// allowed, as `@@gtid_executed` prints them); empty text is the empty set.
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let mut set = Self::default();
        for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let mut parts = member.split(':');
            let uuid = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            if uuid.len() != 36 || !uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
                return Err(invalid("set", text, "a member does not start with a UUID"));
            }
            let mut source = uuid;
            let mut any = false;
            for part in parts {
                let part = part.trim();
                if part.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
                    // A tag (MySQL 8.4): intervals after it belong to `uuid:tag`.
                    let base = source.split(':').next().unwrap_or_default().to_owned();
                    source = format!("{base}:{part}");
                    continue;
                }
                let (start, end) = match part.split_once('-') {
                    Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
                    None => (part.parse::<u64>(), part.parse::<u64>()),
                };
                let (Ok(start), Ok(end)) = (start, end) else {
                    return Err(invalid("set", text, "an interval is not n or n-m"));
                };
                if start == 0 || end < start {
                    return Err(invalid("set", text, "an interval is empty or starts at 0"));
                }
                set.insert(&source, start, end);
                any = true;
            }
            if !any {
                return Err(invalid("set", text, "a member has no interval"));
            }
        }
        Ok(set)
    }

    /// Adds `[start, end]` to `source`, merging adjacent and overlapping intervals.
    fn insert(&mut self, source: &str, start: u64, end: u64) {
        let intervals = self.sources.entry(source.to_owned()).or_default();
        intervals.push((start, end));
        intervals.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
        for &(s, e) in intervals.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *intervals = merged;
    }

    /// Records a completed transaction `uuid:gno` (the text of [`mysql_gtid`](crate)).
    pub fn apply(&mut self, gtid: &str) -> Result<(), GtidError> {
        let (source, gno) = gtid
            .rsplit_once(':')
            .ok_or_else(|| invalid("", gtid, "expected uuid:number"))?;
        let gno: u64 = gno
            .parse()
            .map_err(|_| invalid("", gtid, "the transaction number is not a number"))?;
        if gno == 0 {
            return Err(invalid("", gtid, "transaction numbers start at 1"));
        }
        self.insert(&source.to_ascii_lowercase(), gno, gno);
        Ok(())
    }

    /// True when the set has no transaction.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The set a MySQL PREVIOUS_GTIDS event (type 35, at the start of every binlog file)
    /// carries: every GTID executed before the file. Intervals there are half-open.
    pub fn from_previous_gtids(
        event: &mysql_async::binlog::events::PreviousGtidsEvent<'_>,
    ) -> Self {
        let mut set = Self::default();
        for sid in event.sids() {
            let text = crate::source::uuid_text(&sid.uuid());
            let source = match sid.tag() {
                Some(tag) => format!("{text}:{tag}"),
                None => text,
            };
            for interval in sid.intervals() {
                if interval.end() > interval.start() && interval.start() > 0 {
                    set.insert(&source, interval.start(), interval.end() - 1);
                }
            }
        }
        set
    }

    /// The members as `COM_BINLOG_DUMP_GTID` wants them (one per source).
    pub fn sids(&self) -> Result<Vec<mysql_async::Sid<'static>>, GtidError> {
        self.sources
            .iter()
            .map(|(source, intervals)| {
                let text = member_text(source, intervals);
                text.parse()
                    .map_err(|_| invalid("set", &text, "the client library rejected it"))
            })
            .collect()
    }
}

fn member_text(source: &str, intervals: &[(u64, u64)]) -> String {
    let mut text = source.to_owned();
    for &(start, end) in intervals {
        if start == end {
            text.push_str(&format!(":{start}"));
        } else {
            text.push_str(&format!(":{start}-{end}"));
        }
    }
    text
}

impl fmt::Display for MySqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (source, intervals)) in self.sources.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&member_text(source, intervals))?;
        }
        Ok(())
    }
}

/// Whether a PREVIOUS_GTIDS event body (untagged format: n_sids u64, then per SID 16
/// bytes, n_intervals u64, 16 bytes per interval) is as long as its counts say. mysql_common
/// sizes its vectors by the counts before reading, so a damaged count would make it
/// allocate without bound; such an event (or a tagged one, MySQL 8.4) is not decoded.
pub fn previous_gtids_plausible(body: &[u8]) -> bool {
    let read = |at: usize| -> Option<u64> {
        body.get(at..at + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    let Some(sids) = read(0) else { return false };
    let mut at = 8usize;
    for _ in 0..sids {
        let Some(intervals) = read(at + 16) else {
            return false;
        };
        let Some(next) = usize::try_from(intervals)
            .ok()
            .and_then(|n| n.checked_mul(16))
            .and_then(|n| n.checked_add(at + 24))
        else {
            return false;
        };
        if next > body.len() {
            return false;
        }
        at = next;
    }
    true
}

/// The GTIDs completed so far, in the server family's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidState {
    /// MariaDB GTID position.
    MariaDb(MariaDbGtidPosition),
    /// MySQL GTID set.
    MySql(MySqlGtidSet),
}

impl GtidState {
    /// Records a completed transaction by its GTID text; a GTID of the other family or
    /// one that does not parse is an error.
    pub fn apply(&mut self, gtid: &str) -> Result<(), GtidError> {
        match self {
            GtidState::MariaDb(position) => {
                position.apply(MariaDbGtid::parse(gtid)?);
                Ok(())
            }
            GtidState::MySql(set) => set.apply(gtid),
        }
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::MariaDb(p) => p.fmt(f),
            GtidState::MySql(s) => s.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mariadb_positions_keep_the_last_gtid_per_domain() {
        let mut p = MariaDbGtidPosition::parse("1-2-7, 0-1-100").unwrap();
        assert_eq!(p.to_string(), "0-1-100,1-2-7");
        p.apply(MariaDbGtid::parse("0-3-101").unwrap());
        p.apply(MariaDbGtid::parse("5-1-1").unwrap());
        assert_eq!(p.to_string(), "0-3-101,1-2-7,5-1-1");
        assert!(MariaDbGtidPosition::parse("").unwrap().is_empty());
        assert!(MariaDbGtidPosition::parse("0-1").is_err());
        assert!(MariaDbGtidPosition::parse("0-1-x").is_err());
        assert!(MariaDbGtidPosition::parse("0-1-1,0-1-2").is_err());
    }

    #[test]
    fn mysql_sets_merge_intervals() {
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut set = MySqlGtidSet::parse(&format!("{uuid}:1-5:7-9")).unwrap();
        set.apply(&format!("{uuid}:6")).unwrap();
        assert_eq!(set.to_string(), format!("{uuid}:1-9"));
        set.apply(&format!("{uuid}:11")).unwrap();
        assert_eq!(set.to_string(), format!("{uuid}:1-9:11"));
        let other = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        set.apply(&format!("{}:1", other.to_uppercase())).unwrap();
        assert_eq!(set.to_string(), format!("{uuid}:1-9:11,{other}:1"));
        // As @@gtid_executed prints it, with a newline after the comma.
        let again = MySqlGtidSet::parse(&format!("{uuid}:1-9:11,\n{other}:1")).unwrap();
        assert_eq!(again, set);
        assert_eq!(set.sids().unwrap().len(), 2);
    }

    #[test]
    fn mysql_tagged_sets_keep_tags_apart() {
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let set = MySqlGtidSet::parse(&format!("{uuid}:1-3:blue:1-2")).unwrap();
        assert_eq!(set.to_string(), format!("{uuid}:1-3,{uuid}:blue:1-2"));
        assert_eq!(set.sids().unwrap().len(), 2);
    }

    #[test]
    fn bad_sets_are_errors() {
        for bad in [
            "x:1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:0",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-2",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:a-b-c",
        ] {
            assert!(MySqlGtidSet::parse(bad).is_err(), "{bad}");
        }
        let mut state = GtidState::MySql(MySqlGtidSet::default());
        assert!(state.apply("0-1-5").is_err());
        let mut state = GtidState::MariaDb(MariaDbGtidPosition::default());
        assert!(
            state
                .apply("3e11fa47-71ca-11e1-9e33-c80aa9429562:1")
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn mysql_sets_equal_the_numbers_applied(gnos in proptest::collection::vec(1u64..60, 0..40)) {
            let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
            let mut set = MySqlGtidSet::default();
            for g in &gnos {
                set.apply(&format!("{uuid}:{g}")).unwrap();
            }
            let reparsed = MySqlGtidSet::parse(&set.to_string()).unwrap();
            prop_assert_eq!(&reparsed, &set);
            let mut expected: Vec<u64> = gnos.clone();
            expected.sort_unstable();
            expected.dedup();
            let covered: Vec<u64> = set
                .sources
                .values()
                .flat_map(|v| v.iter().flat_map(|&(s, e)| s..=e))
                .collect();
            prop_assert_eq!(covered, expected);
        }

        #[test]
        fn no_text_panics(text in ".{0,80}") {
            let _ = MySqlGtidSet::parse(&text);
            let _ = MariaDbGtidPosition::parse(&text);
        }
    }
}
