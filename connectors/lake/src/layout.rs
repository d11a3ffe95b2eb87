//! Where files go and what they are called.
//!
//! A visible file is `<root>/<topic>/date=YYYY-MM-DD/hour=HH/<connector>+<first>+<last>.<ext>`:
//! Hive-style partitions on the commit time of the events (UTC), and the positions of the
//! first and last event in the file as *position tokens* — fixed-width text whose
//! byte order is the order of the positions, so a name alone says whether a file lies
//! past the committed offset. A file being written is `.<connector>+<first>.<ext>.tmp` in
//! the same directory; names starting with `.` are ignored by Hive, Spark, Trino and
//! DuckDB readers, so a reader never sees a half-written file.
//!
//! Writer schemas are copied to `<root>/_schemas/<topic>/<fingerprint>.avsc`.

use std::path::{Path, PathBuf};

use outflow_interchange::envelope::types::civil_from_days;

/// The connector name as it appears in file names: characters other than ASCII letters,
/// digits, `-` and `_` become `_` (so `+`, `/` and `.` cannot break the layout).
pub fn file_prefix(connector: &str) -> String {
    connector
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `date=…/hour=…` directory of a commit time (µs since the epoch, UTC).
pub fn partition_dir(commit_us: i64) -> String {
    let secs = commit_us.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    let (y, m, d) = civil_from_days(days);
    format!("date={y:04}-{m:02}-{d:02}/hour={hour:02}")
}

/// A topic as a directory name: path separators and a leading dot are replaced.
pub fn topic_dir(topic: &str) -> String {
    let mut dir: String = topic
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    if dir.starts_with('.') || dir.is_empty() {
        dir.insert(0, '_');
    }
    dir
}

/// Name of a finished file.
pub fn final_name(prefix: &str, first: &str, last: &str, extension: &str) -> String {
    format!("{prefix}+{first}+{last}.{extension}")
}

/// Name of a file being written.
pub fn temp_name(prefix: &str, first: &str, extension: &str) -> String {
    format!(".{prefix}+{first}.{extension}.tmp")
}

/// What a file name in the lake is, for one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeFile {
    /// A finished file of the connector, with its first and last position tokens.
    Finished {
        /// Token of the first event.
        first: String,
        /// Token of the last event.
        last: String,
    },
    /// A leftover of an interrupted write.
    Temporary,
}

/// Classifies `name` for the connector with file prefix `prefix`; `None` when the file
/// is not this connector's.
pub fn classify(name: &str, prefix: &str) -> Option<LakeFile> {
    if let Some(rest) = name.strip_prefix('.') {
        let rest = rest.strip_suffix(".tmp")?;
        let after = rest.strip_prefix(prefix)?.strip_prefix('+')?;
        return (!after.contains('+')).then_some(LakeFile::Temporary);
    }
    let after = name.strip_prefix(prefix)?.strip_prefix('+')?;
    let (first, rest) = after.split_once('+')?;
    let (last, _extension) = rest.split_once('.')?;
    if first.is_empty() || last.is_empty() || first.contains('+') {
        return None;
    }
    Some(LakeFile::Finished {
        first: first.to_owned(),
        last: last.to_owned(),
    })
}

/// Every file under `root` (recursively), skipping `_schemas`.
pub fn walk(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if dir == root && entry.file_name() == "_schemas" {
                    continue;
                }
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_utc_date_and_hour() {
        // 2024-02-29T23:59:59.999999Z
        assert_eq!(
            partition_dir(1_709_251_199_999_999),
            "date=2024-02-29/hour=23"
        );
        assert_eq!(partition_dir(0), "date=1970-01-01/hour=00");
        assert_eq!(partition_dir(-1), "date=1969-12-31/hour=23");
    }

    #[test]
    fn names_round_trip_and_other_connectors_are_ignored() {
        let prefix = file_prefix("inventory+lake/1");
        assert_eq!(prefix, "inventory_lake_1");
        let name = final_name(&prefix, "a-1", "b-2", "avro");
        assert_eq!(
            classify(&name, &prefix),
            Some(LakeFile::Finished {
                first: "a-1".into(),
                last: "b-2".into()
            })
        );
        assert_eq!(
            classify(&temp_name(&prefix, "a-1", "jsonl.gz"), &prefix),
            Some(LakeFile::Temporary)
        );
        assert_eq!(classify(&name, "inventory"), None);
        assert_eq!(classify("inventory_lake_1_x+a+b.avro", &prefix), None);
        assert_eq!(classify("notes.txt", &prefix), None);
        assert_eq!(topic_dir("../x"), "_.._x");
    }
}
