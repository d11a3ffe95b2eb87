//! The Postgres scenarios: `pg-stream` (and its wide-row variant), `pg-snapshot` and
//! `latency`.
//!
//! `pg-stream` creates one logical slot per reader (the limit's `pg_recvlogical` twice —
//! first and last, the faster counts — plus one per outflow sink and one to warm the
//! cache) before writing, so every reader decodes the same WAL from the same point, with
//! no consumer attached while it is written.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outflow_core::MemoryOffsetStore;
use outflow_postgres::config::PostgresConfig;
use outflow_postgres::position::POSTGRES_POSITIONS;
use outflow_postgres::source::PostgresSource;
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;
use outflow_testkit::{PostgresDatabase, postgres, unique_name};

use crate::child::{DrainSpec, SourceKind};
use crate::debezium::{self, Start};
use crate::measure::{BoxError, DrainPlan, Progress, Run, RunKind, drain, props, time_command};
use crate::sinks::{self, KafkaLab, SinkKind};
use crate::workload;

/// The server's process name (its CPU time is measured per run).
const SERVER: &str = "postgres";

/// The 10-column row of every scenario, as Postgres columns and a row generator over
/// `s` (an integer), plus, for the wide variant, 40 more columns.
fn table_sql(wide: bool) -> (String, String) {
    let mut columns = vec![
        "id int PRIMARY KEY".to_owned(),
        "account bigint".to_owned(),
        "amount numeric(12,2)".to_owned(),
        "note text".to_owned(),
        "created timestamptz".to_owned(),
        "payload jsonb".to_owned(),
        "active bool".to_owned(),
        "ref uuid".to_owned(),
        "score double precision".to_owned(),
        "day date".to_owned(),
    ];
    let mut values = vec![
        "s".to_owned(),
        "s::bigint * 1000003".to_owned(),
        "s / 7.0".to_owned(),
        "'row number ' || s || ' with some text'".to_owned(),
        "timestamptz '2023-11-14 22:13:20.123456+00' + s * interval '1 second'".to_owned(),
        "jsonb_build_object('k', s, 'tags', jsonb_build_array('a', 'b'))".to_owned(),
        "s % 2 = 0".to_owned(),
        "gen_random_uuid()".to_owned(),
        "s * 0.5".to_owned(),
        "date '2024-02-29' + s % 1000".to_owned(),
    ];
    if wide {
        for i in 1..=40 {
            let (column, value) = match i % 4 {
                0 => (format!("c{i} int"), format!("s + {i}")),
                1 => (
                    format!("c{i} text"),
                    format!("'wide column {i} of row ' || s"),
                ),
                2 => (format!("c{i} numeric(12,2)"), format!("s / {i}.0")),
                _ => (
                    format!("c{i} timestamptz"),
                    format!("timestamptz '2024-01-01 00:00:00+00' + s * interval '{i} ms'"),
                ),
            };
            columns.push(column);
            values.push(value);
        }
    }
    (columns.join(", "), values.join(", "))
}

async fn lsn(client: &tokio_postgres::Client) -> Result<(String, u64), BoxError> {
    let row = client
        .query_one(
            "SELECT pg_current_wal_lsn()::text, (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint",
            &[],
        )
        .await?;
    let bytes: i64 = row.get(1);
    Ok((row.get(0), u64::try_from(bytes)?))
}

/// Postgres' spelling of a range of row numbers (see [`workload`]).
fn series(a: u64, b: u64) -> String {
    format!("generate_series({a}, {b}) s")
}

/// Writes the change mix of [`workload::change_statements`]; returns the WAL bytes.
async fn generate_changes(
    client: &tokio_postgres::Client,
    values: &str,
    changes: u64,
) -> Result<u64, BoxError> {
    let (_, start) = lsn(client).await?;
    let last = "UPDATE t SET note = 'last' WHERE id = (SELECT max(id) FROM t)";
    for statement in workload::change_statements(changes, values, series, last) {
        client.batch_execute(&statement).await?;
    }
    let (_, end) = lsn(client).await?;
    Ok(end - start)
}

fn source(
    db: &PostgresDatabase,
    slot: &str,
    extra: &[(&str, &str)],
) -> Result<PostgresSource, BoxError> {
    Ok(PostgresSource::new(PostgresConfig::from_properties(
        &source_props(db, slot, extra),
    )?))
}

/// Drains into `kind` in a child process (see [`crate::child`]).
async fn drain_child(
    db: &PostgresDatabase,
    kind: SinkKind,
    slot: &str,
    extra: &[(&str, &str)],
    rows: u64,
    checkpoint_ms: u64,
) -> Result<crate::measure::Drained, BoxError> {
    DrainSpec::new(
        SourceKind::Postgres,
        source_props(db, slot, extra),
        kind,
        db.name(),
        rows,
        checkpoint_ms,
        SERVER,
    )
    .run()
    .await
}

fn source_props(
    db: &PostgresDatabase,
    slot: &str,
    extra: &[(&str, &str)],
) -> std::collections::BTreeMap<String, String> {
    let port = db.server().port().to_string();
    let mut p = props(&[
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", "postgres"),
        ("database.dbname", db.name()),
        ("slot.name", slot),
        // Loopback without TLS, like the limits (PGSSLMODE=disable).
        ("database.sslmode", "disable"),
    ]);
    p.extend(props(extra));
    p
}

/// One of the server's client tools, connected to `db` over loopback without TLS.
fn client_tool(db: &PostgresDatabase, tool: &str) -> Command {
    let server = db.server();
    let mut command = Command::new(server.client_tool(tool));
    command.env("PGSSLMODE", "disable").args([
        "--host=127.0.0.1".to_owned(),
        format!("--port={}", server.port()),
        "--username=postgres".to_owned(),
        format!("--dbname={}", db.name()),
    ]);
    command
}

/// A Debezium Postgres connector with topic prefix `prefix` on `slot` reading table `t`
/// of `db` (publication `dbz_publication`, made by the scenario), with `extra` on top.
fn debezium_config(
    db: &PostgresDatabase,
    prefix: &str,
    slot: &str,
    extra: &[(&str, &str)],
) -> serde_json::Value {
    let mut config = serde_json::json!({
        "connector.class": outflow_testkit::debezium_connector_class("postgres"),
        "database.hostname": "127.0.0.1",
        "database.port": db.server().port().to_string(),
        "database.user": "postgres",
        "database.dbname": db.name(),
        "database.sslmode": "disable",
        "topic.prefix": prefix,
        "slot.name": slot,
        "plugin.name": "pgoutput",
        "publication.name": "dbz_publication",
        "publication.autocreate.mode": "disabled",
        "table.include.list": "public.t",
    });
    for (key, value) in extra {
        config[*key] = serde_json::json!(value);
    }
    config
}

/// `pg_recvlogical` with pgoutput, the options outflow uses, to /dev/null until `end`.
fn recvlogical(db: &PostgresDatabase, slot: &str, end: &str) -> Command {
    let mut command = client_tool(db, "pg_recvlogical");
    command.args([
        &format!("--slot={slot}"),
        "--start",
        "--no-loop",
        &format!("--endpos={end}"),
        "--fsync-interval=0",
        "--file=-",
        "--option=proto_version=2",
        "--option=publication_names=dbz_publication",
        "--option=messages=true",
        "--option=streaming=on",
    ]);
    command
}

/// `pg-stream`: `changes` pre-generated changes, drained by `pg_recvlogical` and outflow.
pub(crate) async fn stream(
    changes: u64,
    wide: bool,
    sinks: &[SinkKind],
) -> Result<Vec<Run>, BoxError> {
    let scenario = if wide { "pg-stream-wide" } else { "pg-stream" };
    let db = postgres().create_database("bench").await;
    let client = db.connect().await;
    let (columns, values) = table_sql(wide);
    client
        .batch_execute(&format!(
            "CREATE TABLE t ({columns}); CREATE PUBLICATION dbz_publication FOR TABLE t"
        ))
        .await?;
    // Slots are cluster-wide: named after the database.
    let slot = |what: &str| format!("{}_{what}", db.name()).to_lowercase();
    let mut slots = vec![slot("warm"), slot("limit_first")];
    slots.extend(sinks.iter().map(|s| slot(&format!("sink_{s:?}"))));
    slots.push(slot("limit_last"));
    for slot in &slots {
        client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[slot],
            )
            .await?;
    }
    eprintln!("{scenario}: writing {changes} row changes");
    let generating = Instant::now();
    let wal_bytes = generate_changes(&client, &values, changes).await?;
    let (end, _) = lsn(&client).await?;
    eprintln!(
        "{scenario}: written in {:.1} s ({:.0} MB of WAL)",
        generating.elapsed().as_secs_f64(),
        wal_bytes as f64 / 1e6
    );
    let mut runs = Vec::new();
    time_command(recvlogical(&db, &slot("warm"), &end), SERVER)?;
    let first = time_command(recvlogical(&db, &slot("limit_first"), &end), SERVER)?;
    eprintln!("{scenario}: pg_recvlogical {:.2} s", first.seconds);
    let mut outflow_runs = Vec::new();
    for &kind in sinks {
        let slot = slot(&format!("sink_{kind:?}"));
        let drained = if kind == SinkKind::Debezium {
            // The slot made before the load, as for outflow; Debezium uses it as it is.
            let name = unique_name("dbzbench");
            let topic = format!("{name}.public.t");
            let config = debezium_config(&db, &name, &slot, &[("snapshot.mode", "no_data")]);
            let records = changes + workload::deletes(changes);
            debezium::run(Start::Create(name, config), &topic, records, SERVER, None).await?
        } else {
            drain_child(
                &db,
                kind,
                &slot,
                // The slot was made before the load, by the harness: taken over.
                &[("snapshot.mode", "never"), ("slot.adopt.existing", "true")],
                changes,
                100,
            )
            .await?
        };
        outflow_runs.push(Run::drained(scenario, &kind, changes, wal_bytes, &drained));
    }
    let last = time_command(recvlogical(&db, &slot("limit_last"), &end), SERVER)?;
    eprintln!("{scenario}: pg_recvlogical again {:.2} s", last.seconds);
    runs.push(
        Run::tool(
            scenario,
            RunKind::Limit,
            "limit: pg_recvlogical (pgoutput) → /dev/null",
            changes,
            first.faster(last),
        )
        .with_bytes(Some(wal_bytes)),
    );
    runs.extend(outflow_runs);
    for slot in &slots {
        let _ = client
            .execute("SELECT pg_drop_replication_slot($1)", &[slot])
            .await;
    }
    Ok(runs)
}

/// `pg-snapshot`: a table of `rows` rows, read by `COPY … TO STDOUT` and by outflow's
/// snapshot (`snapshot.mode=initial_only`).
pub(crate) async fn snapshot(rows: u64, sinks: &[SinkKind]) -> Result<Vec<Run>, BoxError> {
    let scenario = "pg-snapshot";
    let db = postgres().create_database("bench").await;
    let client = db.connect().await;
    let (columns, values) = table_sql(false);
    client
        .batch_execute(&format!("CREATE TABLE t ({columns})"))
        .await?;
    eprintln!("{scenario}: writing {rows} rows");
    let generating = Instant::now();
    for statement in workload::fill_statements(rows, 500_000, &values, series) {
        client.batch_execute(&statement).await?;
    }
    client.batch_execute("VACUUM ANALYZE t").await?;
    let bytes: i64 = client
        .query_one("SELECT pg_table_size('t')", &[])
        .await?
        .get(0);
    eprintln!(
        "{scenario}: written in {:.1} s ({:.0} MB)",
        generating.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    );
    let copy = || {
        let mut command = client_tool(&db, "psql");
        command.args([
            "--quiet",
            "--no-psqlrc",
            "--command=COPY (SELECT * FROM t) TO STDOUT",
        ]);
        command
    };
    time_command(copy(), SERVER)?;
    let first = time_command(copy(), SERVER)?;
    eprintln!("{scenario}: COPY {:.2} s", first.seconds);
    let mut outflow_runs = Vec::new();
    for &kind in sinks {
        let slot = format!("{}_snap_{kind:?}", db.name()).to_lowercase();
        let drained = if kind == SinkKind::Debezium {
            let name = unique_name("dbzbench");
            let topic = format!("{name}.public.t");
            let config = debezium_config(
                &db,
                &name,
                &slot,
                &[
                    ("snapshot.mode", "initial_only"),
                    ("publication.name", &format!("{slot}_pub")),
                    ("publication.autocreate.mode", "filtered"),
                ],
            );
            debezium::run(Start::Create(name, config), &topic, rows, SERVER, None).await?
        } else {
            drain_child(
                &db,
                kind,
                &slot,
                &[("snapshot.mode", "initial_only")],
                rows,
                1000,
            )
            .await?
        };
        outflow_runs.push(Run::drained(scenario, &kind, rows, bytes as u64, &drained));
        let _ = client
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await;
    }
    let last = time_command(copy(), SERVER)?;
    eprintln!("{scenario}: COPY again {:.2} s", last.seconds);
    let mut runs = vec![
        Run::tool(
            scenario,
            RunKind::Limit,
            "limit: COPY (SELECT * FROM t) TO STDOUT → /dev/null",
            rows,
            first.faster(last),
        )
        .with_bytes(Some(bytes as u64)),
    ];
    runs.extend(outflow_runs);
    Ok(runs)
}

/// Writes single-row transactions at `rate` per second for `seconds` over a few
/// connections, after one primer row has come through (so connecting is not measured);
/// returns the rows written.
async fn steady_load(
    db: &'static str,
    rate: u64,
    seconds: u64,
    progress: Arc<Progress>,
) -> Result<u64, BoxError> {
    let server = postgres();
    let primer = server.connect(db).await;
    primer
        .batch_execute("INSERT INTO t (id, note) VALUES (0, 'primer')")
        .await?;
    let waiting = Instant::now();
    while progress.rows() < 1 {
        if waiting.elapsed() > Duration::from_secs(60) {
            return Err("the primer row did not arrive in 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    progress.clear_latency();
    const CONNECTIONS: u64 = 5;
    let per_connection = rate / CONNECTIONS;
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let client = server.connect(db).await;
        tasks.push(tokio::spawn(async move {
            let statement = client
                .prepare(
                    "INSERT INTO t (id, account, amount, note, created, payload, active, ref, score, day)
                     VALUES ($1::int, $1::int * 1000003::bigint, $1::int / 7.0, 'steady load row', now(),
                             '{\"k\": 1}', true, gen_random_uuid(), 0.5, current_date)",
                )
                .await?;
            let total = per_connection * seconds;
            let period = Duration::from_secs_f64(1.0 / per_connection as f64);
            let started = tokio::time::Instant::now();
            for i in 0..total {
                tokio::time::sleep_until(started + period.mul_f64(i as f64)).await;
                let id = (1 + c + i * CONNECTIONS) as i32;
                client.execute(&statement, &[&id]).await?;
            }
            Ok::<u64, BoxError>(total)
        }));
    }
    let mut rows = 1;
    for task in tasks {
        rows += task.await??;
    }
    Ok(rows)
}

/// `latency`: a steady `rate` single-row transactions per second for `seconds`, commit
/// timestamp → durable in the sink, per sink.
pub(crate) async fn latency(
    rate: u64,
    seconds: u64,
    sinks: &[SinkKind],
) -> Result<Vec<Run>, BoxError> {
    let scenario = "latency";
    let mut runs = Vec::new();
    for &kind in sinks {
        let db = postgres().create_database("latency").await;
        let name_static: &'static str = Box::leak(db.name().to_owned().into_boxed_str());
        let client = db.connect().await;
        let (columns, _) = table_sql(false);
        client
            .batch_execute(&format!(
                "CREATE TABLE t ({columns}); CREATE PUBLICATION dbz_publication FOR TABLE t"
            ))
            .await?;
        let name = unique_name("bench");
        // The slot exists before the load starts, so the primer row is in it.
        let slot_name = name.clone();
        client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&name],
            )
            .await?;
        if kind == SinkKind::Debezium {
            eprintln!("{scenario}: {kind}: {rate} tx/s for {seconds} s");
            let topic = format!("{name}.public.t");
            let config = debezium_config(&db, &name, &name, &[("snapshot.mode", "no_data")]);
            let load: crate::measure::LoadStarter = Box::new(move |progress| {
                tokio::spawn(steady_load(name_static, rate, seconds, progress))
            });
            let drained = debezium::run(
                Start::Create(name.clone(), config),
                &topic,
                u64::MAX,
                SERVER,
                Some(load),
            )
            .await?;
            let _ = client
                .execute("SELECT pg_drop_replication_slot($1)", &[&slot_name])
                .await;
            let mut run = Run::peer(scenario, &kind.to_string(), drained.rows, &drained);
            run.what = format!("{kind} at {rate} tx/s");
            runs.push(run);
            continue;
        }
        let kafka = kind.uses_kafka().then(KafkaLab::from_testkit);
        let sink = sinks::build(
            kind,
            (&POSTGRES_SOURCE_BLOCK, &POSTGRES_POSITIONS),
            &name,
            &name,
            db.name(),
            kafka.as_ref(),
        )
        .await?;
        eprintln!("{scenario}: {kind}: {rate} tx/s for {seconds} s");
        let drained = drain(
            source(
                &db,
                &name,
                &[
                    ("snapshot.mode", "no_data"),
                    ("status.update.interval.ms", "1000"),
                    // Made above, before the load: taken over.
                    ("slot.adopt.existing", "true"),
                ],
            )?,
            sink,
            DrainPlan {
                name,
                rows: u64::MAX,
                // The flush interval bounds the lake's latency and Kafka's (one
                // transaction per flush); the daemon's default is 1 s, a latency-minded
                // deployment sets offset.flush.interval.ms / flush.interval.ms so.
                checkpoint: Duration::from_millis(20),
                offsets: Arc::new(MemoryOffsetStore::new()),
                latency: true,
                server: SERVER,
                load: Some(Box::new(move |progress| {
                    tokio::spawn(steady_load(name_static, rate, seconds, progress))
                })),
            },
        )
        .await?;
        let _ = client
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot_name])
            .await;
        let mut run = Run::outflow(scenario, &kind.to_string(), drained.rows, &drained);
        run.what = format!("{kind} at {rate} tx/s");
        runs.push(run);
    }
    Ok(runs)
}
