//! Which tables a DDL statement from the binlog touches, and how.
//!
//! Statements are parsed with sqlparser's MySQL dialect: `CREATE TABLE`, `ALTER TABLE`
//! (a `RENAME` operation is a drop of the old name and a create of the new), `DROP TABLE`
//! and `RENAME TABLE`, with their (optionally database-qualified) names; `CREATE
//! TEMPORARY TABLE` is not replicated in row format and changes no captured table. A
//! statement the parser cannot read (MariaDB extensions such as `ALTER ONLINE TABLE`,
//! `CREATE OR REPLACE TABLE … SELECT`, newer syntax) falls back to a tokenizer of the
//! statement's head (skipping comments and optional keywords), with a warning: the risk is
//! a table named in an unusual form being missed, so its schema-change event is not
//! emitted (its rows still decode with the shape their TABLE_MAP carries). In both cases
//! the table's new shape is read from `information_schema`; anything else (views,
//! procedures, grants, `TRUNCATE`) is not a table-shape change.

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
    match parsed_changes(sql, default_db) {
        Some(changes) => changes,
        None => {
            let changes = changes_by_head(sql, default_db);
            if !changes.is_empty() {
                tracing::warn!(
                    statement = %sql.chars().take(200).collect::<String>(),
                    "the SQL parser cannot read this DDL; its tables were found from the statement's head (a table named in an unusual form may be missed)"
                );
            }
            changes
        }
    }
}

/// The table changes as sqlparser reads them; `None` if it cannot parse `sql`. Only
/// statements that start with CREATE, ALTER, DROP or RENAME reach the parser (others
/// change no table's shape), and a
/// panic inside it counts as "cannot parse": sqlparser 0.59 unwraps inside its MySQL
/// `DIV` parsing (found by fuzzing `SET x = e DIV <garbage>`).
fn parsed_changes(sql: &str, default_db: &str) -> Option<Vec<TableChange>> {
    use sqlparser::ast::{
        AlterTableOperation, ObjectName, ObjectNamePart, ObjectType, RenameTableNameKind, Statement,
    };
    let head = tokens(sql).into_iter().next()?.to_ascii_uppercase();
    if !matches!(head.as_str(), "CREATE" | "ALTER" | "DROP" | "RENAME") {
        // Not a table-shape change, whatever else it is.
        return Some(Vec::new());
    }
    // A low recursion limit: DDL heads do not nest, and deeply nested expressions (a
    // fuzzed `DEFAULT (((…)))`) would otherwise recurse until a debug build's 2 MiB
    // thread stack overflows, which aborts the process.
    let statements = std::panic::catch_unwind(|| {
        sqlparser::parser::Parser::new(&sqlparser::dialect::MySqlDialect {})
            .with_recursion_limit(24)
            .try_with_sql(sql)?
            .parse_statements()
    })
    .ok()?
    .ok()?;
    let name = |object: &ObjectName| -> Option<(String, String)> {
        let parts: Vec<&str> = object
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(ident) => Some(ident.value.as_str()),
                ObjectNamePart::Function(_) => None,
            })
            .collect::<Option<_>>()?;
        match parts.as_slice() {
            [table] => Some((default_db.to_owned(), (*table).to_owned())),
            [database, table] => Some(((*database).to_owned(), (*table).to_owned())),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let mut push = |object: &ObjectName, kind| -> Option<()> {
        let (database, table) = name(object)?;
        out.push(TableChange {
            database,
            table,
            kind,
        });
        Some(())
    };
    for statement in &statements {
        match statement {
            Statement::CreateTable(create) if !create.temporary => {
                push(&create.name, SchemaChangeKind::Create)?;
            }
            Statement::AlterTable {
                name: table,
                operations,
                ..
            } => {
                let renamed = operations.iter().find_map(|op| match op {
                    AlterTableOperation::RenameTable {
                        table_name: RenameTableNameKind::As(new) | RenameTableNameKind::To(new),
                    } => Some(new),
                    _ => None,
                });
                match renamed {
                    Some(new) => {
                        push(table, SchemaChangeKind::Drop)?;
                        push(new, SchemaChangeKind::Create)?;
                    }
                    None => push(table, SchemaChangeKind::Alter)?,
                }
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                temporary: false,
                ..
            } => {
                for table in names {
                    push(table, SchemaChangeKind::Drop)?;
                }
            }
            Statement::RenameTable(renames) => {
                for rename in renames {
                    push(&rename.old_name, SchemaChangeKind::Drop)?;
                    push(&rename.new_name, SchemaChangeKind::Create)?;
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// The table changes found by reading the statement's head (the parser's fallback).
fn changes_by_head(sql: &str, default_db: &str) -> Vec<TableChange> {
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

    #[test]
    fn statements_that_make_sqlparser_panic_are_read_by_their_head() {
        // Found by fuzzing: sqlparser 0.59 unwraps a failed parse after MySQL's DIV.
        assert!(table_changes("sEt Ass=E \nDIV\n\n\0", "db").is_empty());
        let changes = table_changes("ALTER TABLE t ADD COLUMN c INT DEFAULT (1 DIV \0)", "db");
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.database.as_str(), c.table.as_str()))
                .collect::<Vec<_>>(),
            [("db", "t")]
        );
    }

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

    /// The parser and the head reader agree wherever both read a statement; MariaDB
    /// syntax the parser does not know still yields its tables (by the head reader).
    #[test]
    fn parser_and_head_reader_agree() {
        let statements = [
            "CREATE TABLE IF NOT EXISTS `a b` (id int)",
            "CREATE TABLE t (id INT PRIMARY KEY, doc JSON, v DECIMAL(10,2) DEFAULT 0) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "ALTER TABLE other.t ADD COLUMN c INT, DROP COLUMN d",
            "ALTER TABLE t RENAME TO u",
            "ALTER TABLE t RENAME COLUMN a TO b",
            "DROP TABLE IF EXISTS t1, `db`.`t2` /* generated by server */",
            "RENAME TABLE a TO b, c TO d.e",
            "CREATE TEMPORARY TABLE t (id int)",
            "CREATE VIEW v AS SELECT 1",
            "TRUNCATE TABLE t",
        ];
        let plain = |changes: Vec<TableChange>| -> Vec<(String, String, SchemaChangeKind)> {
            changes
                .into_iter()
                .map(|c| (c.database, c.table, c.kind))
                .collect()
        };
        for sql in statements {
            let parsed = parsed_changes(sql, "shop").unwrap_or_else(|| panic!("parse {sql}"));
            assert_eq!(plain(parsed), plain(changes_by_head(sql, "shop")), "{sql}");
        }
        // MariaDB-only syntax: not parsed, still found.
        let online = "ALTER ONLINE TABLE shop.t ADD COLUMN c INT";
        assert!(parsed_changes(online, "shop").is_none());
        assert_eq!(
            names(online),
            [("shop".into(), "t".into(), SchemaChangeKind::Alter)]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(sql in ".{0,120}") {
            let _ = table_changes(&sql, "db");
        }
    }
}
