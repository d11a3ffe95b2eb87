//! Replays the binlog, MariaDB-event and DDL fuzz corpora (`fuzz/corpus/*`, grown by
//! `cargo fuzz`) through the entry points the fuzz targets call.

use std::path::Path;

fn corpus(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn binlog_events_corpus() {
    outflow_testkit::replay_corpus(
        &corpus("binlog_events"),
        outflow_mysql::fuzzing::binlog_events,
    );
}

#[test]
fn mariadb_events_corpus() {
    outflow_testkit::replay_corpus(
        &corpus("mariadb_events"),
        outflow_mysql::fuzzing::mariadb_events,
    );
}

#[test]
fn ddl_corpus() {
    outflow_testkit::replay_corpus(&corpus("ddl"), outflow_mysql::fuzzing::ddl);
}
