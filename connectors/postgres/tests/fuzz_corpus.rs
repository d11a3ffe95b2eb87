//! Replays the `pgoutput` fuzz corpus (`fuzz/corpus/pgoutput`, grown by `cargo fuzz`)
//! through the entry point the fuzz target calls.

#[test]
fn pgoutput_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pgoutput");
    outflow_testkit::replay_corpus(&dir, outflow_postgres::fuzzing::pgoutput);
}
