//! The statements that write each scenario's data, the same mix for both databases:
//! only how a range of row numbers is spelled (`generate_series(a, b) s` on Postgres,
//! the SEQUENCE engine's `seq_a_to_b` on MariaDB) and the row's column expressions
//! differ.

/// Spells "the rows numbered `a` to `b`" as a FROM item whose column is the row number.
pub(crate) type RowRange = fn(u64, u64) -> String;

/// `changes` row changes into `t`, in blocks of 1,000: 600 inserts (one statement), 300
/// updates, 100 deletes of rows the block inserted; then `last`, a statement changing one
/// row in its own transaction (so a run ends exactly when that row is durable).
pub(crate) fn change_statements(
    changes: u64,
    values: &str,
    range: RowRange,
    last: &str,
) -> Vec<String> {
    let body = changes.saturating_sub(1);
    let mut statements = Vec::with_capacity(usize::try_from(body / 333 + 2).unwrap_or(0));
    let mut written = 0u64;
    let mut first = 1u64;
    while written < body {
        let block = (body - written).min(1000);
        let inserts = (block * 6 / 10).max(1);
        let updates = (block * 3 / 10).min(block - inserts);
        let deletes = block - inserts - updates;
        statements.push(format!(
            "INSERT INTO t SELECT {values} FROM {}",
            range(first, first + inserts - 1)
        ));
        if updates > 0 {
            statements.push(format!(
                "UPDATE t SET amount = amount + 1, note = 'changed' WHERE id BETWEEN {first} AND {}",
                first + updates - 1
            ));
        }
        if deletes > 0 {
            statements.push(format!(
                "DELETE FROM t WHERE id BETWEEN {} AND {}",
                first + updates,
                first + updates + deletes - 1
            ));
        }
        first += inserts;
        written += block;
    }
    statements.push(last.to_owned());
    statements
}

/// How many of the `changes` of [`change_statements`] are deletes (Debezium writes a
/// tombstone after each, so its topic holds this many records more than changes).
pub(crate) fn deletes(changes: u64) -> u64 {
    let body = changes.saturating_sub(1);
    let (full, rest) = (body / 1000, body % 1000);
    let in_block = |block: u64| {
        if block == 0 {
            return 0;
        }
        let inserts = (block * 6 / 10).max(1);
        let updates = (block * 3 / 10).min(block - inserts);
        block - inserts - updates
    };
    full * in_block(1000) + in_block(rest)
}

/// `rows` rows into `t`, `chunk` per statement.
pub(crate) fn fill_statements(rows: u64, chunk: u64, values: &str, range: RowRange) -> Vec<String> {
    (0..rows.div_ceil(chunk.max(1)))
        .map(|i| {
            let from = i * chunk + 1;
            let to = ((i + 1) * chunk).min(rows);
            format!("INSERT INTO t SELECT {values} FROM {}", range(from, to))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(a: u64, b: u64) -> String {
        format!("r({a},{b})")
    }

    #[test]
    fn the_mix_counts_every_change_once() {
        let statements = change_statements(2001, "v", series, "LAST");
        // 2 blocks of 1,000 (3 statements each) and the last change.
        assert_eq!(statements.len(), 7);
        assert_eq!(statements[0], "INSERT INTO t SELECT v FROM r(1,600)");
        assert_eq!(statements[3], "INSERT INTO t SELECT v FROM r(601,1200)");
        assert_eq!(statements[6], "LAST");
        assert_eq!(change_statements(1, "v", series, "LAST"), vec!["LAST"]);
    }

    #[test]
    fn deletes_are_counted_as_the_statements_make_them() {
        for changes in [1, 2, 1001, 2001, 2500, 300_000] {
            let deleted: u64 = change_statements(changes, "v", series, "LAST")
                .iter()
                .filter_map(|s| s.strip_prefix("DELETE FROM t WHERE id BETWEEN "))
                .map(|range| {
                    let (a, b) = range.split_once(" AND ").unwrap();
                    b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1
                })
                .sum();
            assert_eq!(deletes(changes), deleted, "{changes} changes");
        }
    }

    #[test]
    fn fill_covers_every_row() {
        assert_eq!(
            fill_statements(5, 2, "v", series),
            vec![
                "INSERT INTO t SELECT v FROM r(1,2)",
                "INSERT INTO t SELECT v FROM r(3,4)",
                "INSERT INTO t SELECT v FROM r(5,5)",
            ]
        );
    }
}
