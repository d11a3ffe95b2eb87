//! Which tables a DDL statement from the binlog touches, and how.
//!
//! A small tokenizer, not a SQL parser: it reads the statement's head (skipping comments
//! and optional keywords) to find `CREATE TABLE`, `ALTER TABLE`, `DROP TABLE` and `RENAME
//! TABLE` with their (optionally database-qualified, optionally backquoted) table names.
//! The table's new shape is then read from `information_schema`, so the statement's body
//! never needs to be understood. Anything else (views, procedures, grants, `TRUNCATE`) is
//! not a table-shape change.

use outflow_core::event::SchemaChangeKind;

/// A table a DDL statement changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChange {
    /// Database (the statement's, or the session's default).
    pub database: String,
    /// Table.
    pub table: String,
    /// What happened to it.
    pub kind: SchemaChangeKind,
}

fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '/' => {
                chars.next();
                if chars.peek() == Some(&'*') {
                    let mut previous = ' ';
                    for c in chars.by_ref() {
                        if previous == '*' && c == '/' {
                            break;
                        }
                        previous = c;
                    }
                } else {
                    out.push("/".to_owned());
                }
            }
            '-' => {
                chars.next();
                if chars.peek() == Some(&'-') {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                } else {
                    out.push("-".to_owned());
                }
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '`' => {
                chars.next();
                let mut name = String::from("`");
                while let Some(c) = chars.next() {
                    if c == '`' {
                        if chars.peek() == Some(&'`') {
                            chars.next();
                            name.push('`');
                            continue;
                        }
                        break;
                    }
                    name.push(c);
                }
                out.push(name);
            }
            '.' | ',' | '(' | ')' | ';' => {
                out.push(c.to_string());
                chars.next();
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '.' | ',' | '(' | ')' | ';' | '`') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    out
}

fn is(token: Option<&String>, word: &str) -> bool {
    token.is_some_and(|t| !t.starts_with('`') && t.eq_ignore_ascii_case(word))
}

fn ident(token: &str) -> String {
    token.strip_prefix('`').unwrap_or(token).to_owned()
}

/// Reads `[db.]table` at `at`; returns it and the index after it.
fn name(tokens: &[String], at: usize, default_db: &str) -> Option<((String, String), usize)> {
    let first = tokens.get(at)?;
    if tokens.get(at + 1).map(String::as_str) == Some(".") {
        let second = tokens.get(at + 2)?;
        Some(((ident(first), ident(second)), at + 3))
    } else {
        Some(((default_db.to_owned(), ident(first)), at + 1))
    }
}

/// The table changes of `sql`, run with default database `default_db`.
pub fn table_changes(sql: &str, default_db: &str) -> Vec<TableChange> {
    let t = tokens(sql);
    let mut i = 0;
    let change = |(database, table): (String, String), kind| TableChange {
        database,
        table,
        kind,
    };
    let mut out = Vec::new();
    if is(t.first(), "CREATE") {
        i += 1;
        if is(t.get(i), "OR") && is(t.get(i + 1), "REPLACE") {
            i += 2;
        }
        if is(t.get(i), "TEMPORARY") {
            return out;
        }
        if !is(t.get(i), "TABLE") {
            return out;
        }
        i += 1;
        if is(t.get(i), "IF") && is(t.get(i + 1), "NOT") && is(t.get(i + 2), "EXISTS") {
            i += 3;
        }
        if let Some((n, _)) = name(&t, i, default_db) {
            out.push(change(n, SchemaChangeKind::Create));
        }
    } else if is(t.first(), "ALTER") {
        i += 1;
        while is(t.get(i), "ONLINE") || is(t.get(i), "IGNORE") {
            i += 1;
        }
        if !is(t.get(i), "TABLE") {
            return out;
        }
        i += 1;
        if is(t.get(i), "IF") && is(t.get(i + 1), "EXISTS") {
            i += 2;
        }
        if let Some((n, next)) = name(&t, i, default_db) {
            // ALTER TABLE a RENAME [TO|AS] b
            let mut j = next;
            let mut renamed = None;
            while j < t.len() {
                if is(t.get(j), "RENAME")
                    && !is(t.get(j + 1), "COLUMN")
                    && !is(t.get(j + 1), "INDEX")
                    && !is(t.get(j + 1), "KEY")
                {
                    let k = if is(t.get(j + 1), "TO") || is(t.get(j + 1), "AS") {
                        j + 2
                    } else {
                        j + 1
                    };
                    renamed = name(&t, k, &n.0).map(|(m, _)| m);
                    break;
                }
                j += 1;
            }
            match renamed {
                Some(new) => {
                    out.push(change(n, SchemaChangeKind::Drop));
                    out.push(change(new, SchemaChangeKind::Create));
                }
                None => out.push(change(n, SchemaChangeKind::Alter)),
            }
        }
    } else if is(t.first(), "DROP") {
        i += 1;
        if is(t.get(i), "TEMPORARY") {
            return out;
        }
        if !is(t.get(i), "TABLE") {
            return out;
        }
        i += 1;
        if is(t.get(i), "IF") && is(t.get(i + 1), "EXISTS") {
            i += 2;
        }
        while let Some((n, next)) = name(&t, i, default_db) {
            out.push(change(n, SchemaChangeKind::Drop));
            if t.get(next).map(String::as_str) == Some(",") {
                i = next + 1;
            } else {
                break;
            }
        }
    } else if is(t.first(), "RENAME") && is(t.get(1), "TABLE") {
        i = 2;
        while let Some((from, next)) = name(&t, i, default_db) {
            if !is(t.get(next), "TO") {
                break;
            }
            let Some((to, after)) = name(&t, next + 1, default_db) else {
                break;
            };
            out.push(change(from, SchemaChangeKind::Drop));
            out.push(change(to, SchemaChangeKind::Create));
            if t.get(after).map(String::as_str) == Some(",") {
                i = after + 1;
            } else {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(sql: &str) -> Vec<(String, String, SchemaChangeKind)> {
        table_changes(sql, "shop")
            .into_iter()
            .map(|c| (c.database, c.table, c.kind))
            .collect()
    }

    #[test]
    fn statements_name_their_tables() {
        use SchemaChangeKind::{Alter, Create, Drop};
        assert_eq!(
            names("CREATE TABLE IF NOT EXISTS `a b` (id int)"),
            [("shop".into(), "a b".into(), Create)]
        );
        assert_eq!(
            names("/* x */ alter online table other.t add column c int"),
            [("other".into(), "t".into(), Alter)]
        );
        assert_eq!(
            names("DROP TABLE IF EXISTS t1, `db`.`t2` /* generated by server */"),
            [
                ("shop".into(), "t1".into(), Drop),
                ("db".into(), "t2".into(), Drop)
            ]
        );
        assert_eq!(
            names("RENAME TABLE a TO b, c TO d.e"),
            [
                ("shop".into(), "a".into(), Drop),
                ("shop".into(), "b".into(), Create),
                ("shop".into(), "c".into(), Drop),
                ("d".into(), "e".into(), Create)
            ]
        );
        assert_eq!(
            names("ALTER TABLE t RENAME TO u"),
            [
                ("shop".into(), "t".into(), Drop),
                ("shop".into(), "u".into(), Create)
            ]
        );
        assert_eq!(
            names("ALTER TABLE t RENAME COLUMN a TO b"),
            [("shop".into(), "t".into(), Alter)]
        );
        assert!(names("CREATE TEMPORARY TABLE t (id int)").is_empty());
        assert!(names("CREATE VIEW v AS SELECT 1").is_empty());
        assert!(names("TRUNCATE TABLE t").is_empty());
        assert!(names("GRANT ALL ON *.* TO x").is_empty());
        assert_eq!(
            names("create table `we``ird` (id int)"),
            [("shop".into(), "we`ird".into(), Create)]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(sql in ".{0,120}") {
            let _ = table_changes(&sql, "db");
        }
    }
}
