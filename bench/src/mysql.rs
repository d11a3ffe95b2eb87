//! The MariaDB scenarios: `mysql-stream` (against `mariadb-binlog` reading the same
//! binlog from the server, raw and decoding rows) and `mysql-snapshot` (against the
//! `mariadb` client's `SELECT` to /dev/null).

use std::process::Command;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use outflow_core::SourcePosition;
use outflow_mysql::position::BinlogPosition;
use outflow_testkit::{CDC_PASSWORD, CDC_USER, MariaDbDatabase, mariadb};

use crate::measure::{BoxError, Run, RunKind, props, time_command};

/// The server's process name (its CPU time is measured per run).
const SERVER: &str = "mariadbd";
use crate::child::{DrainSpec, SourceKind};
use crate::debezium::{self, Prepared, Start};
use crate::sinks::SinkKind;
use crate::workload;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, account BIGINT, amount DECIMAL(12,2),
    note VARCHAR(64), created DATETIME(6), payload JSON, active BOOL, ref UUID,
    score DOUBLE, day DATE)";

/// The row of `seq` (from the SEQUENCE engine's `seq_<a>_to_<b>` tables).
const VALUES: &str = "seq, seq * 1000003, seq / 7, CONCAT('row number ', seq, ' with some text'),
    TIMESTAMP('2023-11-14 22:13:20.123456') + INTERVAL seq SECOND,
    CONCAT('{\"k\": ', seq, ', \"tags\": [\"a\", \"b\"]}'), seq % 2,
    UUID(), seq * 0.5, DATE('2024-02-29') + INTERVAL seq % 1000 DAY";

/// MariaDB's spelling of a range of row numbers: the SEQUENCE engine (see [`workload`]).
fn sequence(a: u64, b: u64) -> String {
    format!("seq_{a}_to_{b}")
}

/// Drains into `kind` in a child process (see [`crate::child`]).
async fn drain_child(
    db: &MariaDbDatabase,
    kind: SinkKind,
    server_id: &str,
    extra: &[(&str, &str)],
    start: Option<&BinlogPosition>,
    rows: u64,
    checkpoint_ms: u64,
) -> Result<crate::measure::Drained, BoxError> {
    let mut spec = DrainSpec::new(
        SourceKind::MariaDb,
        source_props(db, server_id, extra),
        kind,
        db.name(),
        rows,
        checkpoint_ms,
        SERVER,
    );
    spec.start = start.map(|p| SourcePosition::from(p.clone()).to_json());
    spec.run().await
}

fn source_props(
    db: &MariaDbDatabase,
    server_id: &str,
    extra: &[(&str, &str)],
) -> std::collections::BTreeMap<String, String> {
    let port = db.server().port().to_string();
    let include = format!("{}\\..*", db.name());
    let mut p = props(&[
        (
            "connector.class",
            "io.debezium.connector.mariadb.MariaDbConnector",
        ),
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", CDC_USER),
        ("database.password", CDC_PASSWORD),
        ("database.server.id", server_id),
        // TLS off on both sides, as for Postgres (docs/benchmarks.md, "Method").
        ("database.ssl.mode", "disabled"),
        ("table.include.list", include.as_str()),
    ]);
    p.extend(props(extra));
    p
}

/// A Debezium MariaDB connector with topic prefix `prefix` reading table `t` of `db`
/// (its schema history in the lab's broker), with `extra` on top.
fn debezium_config(
    db: &MariaDbDatabase,
    prefix: &str,
    server_id: &str,
    extra: &[(&str, &str)],
) -> serde_json::Value {
    let mut config = serde_json::json!({
        "connector.class": outflow_testkit::debezium_connector_class("mariadb"),
        "database.hostname": "127.0.0.1",
        "database.port": db.server().port().to_string(),
        "database.user": CDC_USER,
        "database.password": CDC_PASSWORD,
        "database.server.id": server_id,
        "database.ssl.mode": "disable",
        "database.include.list": db.name(),
        "table.include.list": format!("{}.t", db.name()),
        "topic.prefix": prefix,
        "schema.history.internal.kafka.bootstrap.servers":
            outflow_testkit::broker().bootstrap_servers(),
        "schema.history.internal.kafka.topic": format!("{prefix}.history"),
    });
    for (key, value) in extra {
        config[*key] = serde_json::json!(value);
    }
    config
}

async fn master_status(conn: &mut mysql_async::Conn) -> Result<(String, u64), BoxError> {
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await?
        .ok_or("SHOW MASTER STATUS returned nothing")?;
    Ok((
        row.get::<String, _>(0).ok_or("no file")?,
        row.get::<u64, _>(1).ok_or("no position")?,
    ))
}

/// `mysql-stream`: `changes` changes written with no reader attached, then read by
/// `mariadb-binlog` (raw, decode-rows) and by outflow into each sink.
pub(crate) async fn stream(changes: u64, sinks: &[SinkKind]) -> Result<Vec<Run>, BoxError> {
    let scenario = "mysql-stream";
    let server = mariadb();
    let db = server.create_database("bench").await;
    let mut conn = db.connect().await;
    conn.query_drop(TABLE).await?;
    // Debezium takes the table's schema and its start position before the data is
    // written, then waits stopped (outflow starts from a stored position instead).
    let mut peer = if sinks.contains(&SinkKind::Debezium) {
        let name = outflow_testkit::unique_name("dbzbench");
        let config = debezium_config(&db, &name, "6190", &[("snapshot.mode", "no_data")]);
        Some((name.clone(), Prepared::create(&name, config).await?))
    } else {
        None
    };
    let (start_file, start_pos) = master_status(&mut conn).await?;
    // The change mix of `workload::change_statements`.
    eprintln!("{scenario}: writing {changes} row changes");
    let generating = Instant::now();
    let last = "UPDATE t SET note = 'last' ORDER BY id DESC LIMIT 1";
    for statement in workload::change_statements(changes, VALUES, sequence, last) {
        conn.query_drop(statement).await?;
    }
    let (end_file, _) = master_status(&mut conn).await?;
    let binlog_bytes = {
        let mut bytes = 0u64;
        let mut file = start_file.clone();
        loop {
            let size = std::fs::metadata(server.binlog_dir().join(&file))?.len();
            bytes += if file == start_file {
                size.saturating_sub(start_pos)
            } else {
                size
            };
            if file == end_file {
                break;
            }
            let (base, number) = file.rsplit_once('.').ok_or("binlog name")?;
            let next: u64 = number.parse::<u64>()? + 1;
            file = format!("{base}.{next:0width$}", width = number.len());
        }
        bytes
    };
    eprintln!(
        "{scenario}: written in {:.1} s ({:.0} MB of binlog)",
        generating.elapsed().as_secs_f64(),
        binlog_bytes as f64 / 1e6
    );

    let port = server.port().to_string();
    let remote = |extra: &[String]| {
        let mut command = Command::new("mariadb-binlog");
        command.args([
            "--read-from-remote-server".to_owned(),
            "--skip-ssl".to_owned(),
            "--host=127.0.0.1".to_owned(),
            format!("--port={port}"),
            format!("--user={CDC_USER}"),
            format!("--password={CDC_PASSWORD}"),
            format!("--start-position={start_pos}"),
            "--to-last-log".to_owned(),
        ]);
        command.args(extra);
        command.arg(&start_file);
        command
    };
    let raw_dir = tempfile::tempdir()?;
    let raw_args = [
        "--raw".to_owned(),
        format!("--result-file={}/", raw_dir.path().display()),
    ];
    let decode_args = ["--base64-output=decode-rows".to_owned(), "-v".to_owned()];
    // A first read warms the page cache for the limits and outflow alike.
    time_command(remote(&raw_args), SERVER)?;
    let raw_first = time_command(remote(&raw_args), SERVER)?;
    let decode_first = time_command(remote(&decode_args), SERVER)?;
    eprintln!(
        "{scenario}: raw {:.2} s, decode-rows {:.2} s",
        raw_first.seconds, decode_first.seconds
    );

    let start = BinlogPosition {
        file: start_file.clone(),
        pos: start_pos,
        // The first transaction starts here: only its BEGIN (event 0) counts as seen.
        event: 0,
        row: 0,
        gtid: None,
        gtid_set: None,
        snapshot: false,
        snapshot_reads: None,
    };
    let mut outflow_runs = Vec::new();
    for (i, &kind) in sinks.iter().enumerate() {
        let prepared = if kind == SinkKind::Debezium {
            peer.take()
        } else {
            None
        };
        let drained = if let Some((name, prepared)) = prepared {
            let topic = format!("{name}.{}.t", db.name());
            let records = changes + workload::deletes(changes);
            debezium::run(Start::Resume(prepared), &topic, records, SERVER, None).await?
        } else {
            drain_child(
                &db,
                kind,
                &(6101 + i).to_string(),
                &[],
                Some(&start),
                changes,
                100,
            )
            .await?
        };
        outflow_runs.push(Run::drained(
            scenario,
            &kind,
            changes,
            binlog_bytes,
            &drained,
        ));
    }
    let raw_last = time_command(remote(&raw_args), SERVER)?;
    let decode_last = time_command(remote(&decode_args), SERVER)?;
    eprintln!(
        "{scenario}: again raw {:.2} s, decode-rows {:.2} s",
        raw_last.seconds, decode_last.seconds
    );
    let mut runs = vec![
        Run::tool(
            scenario,
            RunKind::Limit,
            "limit: mariadb-binlog decode-rows -v → /dev/null (C decoder)",
            changes,
            decode_first.faster(decode_last),
        )
        .with_bytes(Some(binlog_bytes)),
        Run::tool(
            scenario,
            RunKind::Ceiling,
            "ceiling: mariadb-binlog --raw (transfer)",
            changes,
            raw_first.faster(raw_last),
        )
        .with_bytes(Some(binlog_bytes)),
    ];
    runs.extend(outflow_runs);
    Ok(runs)
}

/// `mysql-snapshot`: a table of `rows` rows, read by `mariadb -e 'SELECT …'` (rows
/// streamed, not buffered) and by outflow's snapshot (`snapshot.mode=initial_only`).
pub(crate) async fn snapshot(rows: u64, sinks: &[SinkKind]) -> Result<Vec<Run>, BoxError> {
    let scenario = "mysql-snapshot";
    let server = mariadb();
    let db = server.create_database("bench").await;
    let mut conn = db.connect().await;
    conn.query_drop(TABLE).await?;
    eprintln!("{scenario}: writing {rows} rows");
    let generating = Instant::now();
    for statement in workload::fill_statements(rows, 200_000, VALUES, sequence) {
        conn.query_drop(statement).await?;
    }
    conn.query_drop("ANALYZE TABLE t").await?;
    let bytes: u64 = conn
        .query_first(format!(
            "SELECT data_length FROM information_schema.tables
             WHERE table_schema = '{}' AND table_name = 't'",
            db.name()
        ))
        .await?
        .ok_or("no table size")?;
    eprintln!(
        "{scenario}: written in {:.1} s ({:.0} MB)",
        generating.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    );
    let select = || {
        let mut command = Command::new("mariadb");
        command.args([
            "--skip-ssl".to_owned(),
            "--host=127.0.0.1".to_owned(),
            format!("--port={}", server.port()),
            format!("--user={CDC_USER}"),
            format!("--password={CDC_PASSWORD}"),
            "--quick".to_owned(),
            "--batch".to_owned(),
            "--skip-column-names".to_owned(),
            format!("--execute=SELECT * FROM {}.t", db.name()),
        ]);
        command
    };
    time_command(select(), SERVER)?;
    let first = time_command(select(), SERVER)?;
    eprintln!("{scenario}: SELECT {:.2} s", first.seconds);
    let mut outflow_runs = Vec::new();
    for (i, &kind) in sinks.iter().enumerate() {
        let server_id = (6201 + i).to_string();
        let drained = if kind == SinkKind::Debezium {
            let name = outflow_testkit::unique_name("dbzbench");
            let topic = format!("{name}.{}.t", db.name());
            let config =
                debezium_config(&db, &name, &server_id, &[("snapshot.mode", "initial_only")]);
            debezium::run(Start::Create(name, config), &topic, rows, SERVER, None).await?
        } else {
            drain_child(
                &db,
                kind,
                &server_id,
                &[("snapshot.mode", "initial_only")],
                None,
                rows,
                1000,
            )
            .await?
        };
        outflow_runs.push(Run::drained(scenario, &kind, rows, bytes, &drained));
    }
    let last = time_command(select(), SERVER)?;
    eprintln!("{scenario}: SELECT again {:.2} s", last.seconds);
    let mut runs = vec![
        Run::tool(
            scenario,
            RunKind::Limit,
            "limit: mariadb --quick -e 'SELECT * FROM t' → /dev/null",
            rows,
            first.faster(last),
        )
        .with_bytes(Some(bytes)),
    ];
    runs.extend(outflow_runs);
    Ok(runs)
}
