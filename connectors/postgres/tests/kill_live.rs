//! SIGKILL of a process running the connector, in the middle of the snapshot and in the
//! middle of a large transaction; restarted each time from its offset file.
//!
//! The child is this same test binary running [`kill_harness_child`] (ignored unless run
//! by the parent): a pipeline with an offset store in a file (written with rename) and a
//! sink appending one line per event to a file per run. At each kill, the lines after the
//! offset the child had committed are what a transactional sink would have aborted; the
//! parent drops them, and the rest of all runs together must hold every change exactly
//! once, in increasing positions.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outflow_core::offsets::advance;
use outflow_core::{
    CommitOutcome, DurableHandle, EventBatch, EventKind, OffsetStore, OffsetStoreError, Pipeline,
    PipelineConfig, Sink, SinkError, SourcePosition, Value,
};
use outflow_postgres::source::PostgresSource;
use outflow_testkit::{postgres, wait_for};

use crate::source_live::walsender_gone;

/// The positions these tests read back.
const PG: &[&'static dyn outflow_core::PositionFamily] =
    &[&outflow_postgres::position::POSTGRES_POSITIONS];

/// Offsets in a JSON file, replaced atomically.
struct FileOffsets(PathBuf);

impl OffsetStore for FileOffsets {
    async fn load(&self, _connector: &str) -> Result<Option<SourcePosition>, OffsetStoreError> {
        match std::fs::read_to_string(&self.0) {
            Ok(text) => Ok(Some(SourcePosition::from_json(&text, PG).unwrap())),
            Err(_) => Ok(None),
        }
    }

    async fn commit(
        &self,
        connector: &str,
        position: &SourcePosition,
    ) -> Result<CommitOutcome, OffsetStoreError> {
        let mut stored = self.load(connector).await?;
        let outcome = advance(&mut stored, position);
        if outcome == CommitOutcome::Advanced {
            let temporary = self.0.with_extension("tmp");
            std::fs::write(&temporary, position.to_json()).unwrap();
            std::fs::rename(&temporary, &self.0).unwrap();
        }
        Ok(outcome)
    }
}

/// Appends `<position json>\t<kind>\t<id>` per event.
struct LineSink(std::fs::File);

impl Sink for LineSink {
    async fn write(&mut self, batch: EventBatch) -> Result<DurableHandle, SinkError> {
        let mut text = String::new();
        for e in &batch.events {
            let (kind, id) = match &e.kind {
                EventKind::Read { after, .. } => ("read", format!("{:?}", after[0])),
                EventKind::Insert { after, .. } => ("insert", format!("{:?}", after[0])),
                EventKind::Begin(_) => ("begin", String::new()),
                EventKind::Commit(_) => ("commit", String::new()),
                EventKind::Heartbeat => ("heartbeat", String::new()),
                _ => ("other", String::new()),
            };
            text.push_str(&format!("{}\t{kind}\t{id}\n", e.position.to_json()));
        }
        self.0.write_all(text.as_bytes()).unwrap();
        Ok(DurableHandle::ready())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The child: runs the connector until killed.
#[tokio::test]
#[ignore = "run by kill_live::sigkill_mid_snapshot_and_mid_transaction"]
async fn kill_harness_child() {
    let Ok(dir) = std::env::var("OUTFLOW_KILL_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let run: u32 = std::env::var("OUTFLOW_KILL_RUN").unwrap().parse().unwrap();
    let props: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("props.json")).unwrap()).unwrap();
    let config = outflow_postgres::config::PostgresConfig::from_properties(&props).unwrap();
    let sink = std::fs::File::create(dir.join(format!("run{run}.lines"))).unwrap();
    let pipeline = Pipeline::new(
        "pg-kill",
        PostgresSource::new(config),
        LineSink(sink),
        FileOffsets(dir.join("offsets.json")),
        PipelineConfig {
            checkpoint_interval: Duration::from_millis(50),
            ..PipelineConfig::default()
        },
    );
    pipeline
        .run(tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
}

struct Line {
    position: SourcePosition,
    kind: String,
    id: String,
}

fn lines(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let position = SourcePosition::from_json(parts.next()?, PG).ok()?;
            Some(Line {
                position,
                kind: parts.next()?.to_owned(),
                id: parts.next().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

fn spawn_child(dir: &Path, run: u32) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_live::kill_harness_child",
            "--ignored",
            "--nocapture",
        ])
        .env("OUTFLOW_KILL_DIR", dir)
        .env("OUTFLOW_KILL_RUN", run.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGKILL once `condition` holds on the run's lines; returns the run's lines up to the
/// offset it had committed.
async fn kill_when(
    dir: &Path,
    run: u32,
    mut child: std::process::Child,
    condition: impl Fn(&[Line], &SourcePosition) -> bool,
) -> Vec<Line> {
    let path = dir.join(format!("run{run}.lines"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let lines = lines(&path);
        let stored = std::fs::read_to_string(dir.join("offsets.json"))
            .ok()
            .and_then(|t| SourcePosition::from_json(&t, PG).ok());
        if stored.is_some_and(|stored| condition(&lines, &stored)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run}: condition not reached ({} lines)",
            lines.len()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "run {run}: the child exited"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = SourcePosition::from_json(
        &std::fs::read_to_string(dir.join("offsets.json")).unwrap(),
        PG,
    )
    .unwrap();
    lines(&path)
        .into_iter()
        .filter(|l| l.position <= stored)
        .collect()
}

#[tokio::test]
async fn sigkill_mid_snapshot_and_mid_transaction() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("kill").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT i, 'r' || i FROM generate_series(1, 100000) i;",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = db.server().port().to_string();
    let props: BTreeMap<&str, &str> = [
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", "postgres"),
        ("database.dbname", db.name()),
        ("slot.name", db.name()),
        ("status.update.interval.ms", "200"),
    ]
    .into_iter()
    .collect();
    std::fs::write(
        dir.path().join("props.json"),
        serde_json::to_string(&props).unwrap(),
    )
    .unwrap();

    // 1: killed in the middle of the snapshot.
    let kept1 = kill_when(dir.path(), 1, spawn_child(dir.path(), 1), |l, _| {
        l.len() > 20_000
    })
    .await;
    let reads1 = kept1.iter().filter(|l| l.kind == "read").count();
    assert!(
        reads1 > 0 && reads1 < 100_000 && !kept1.iter().any(|l| l.kind == "heartbeat"),
        "run 1 must stop inside the snapshot ({reads1} reads kept)"
    );
    walsender_gone(&admin, &db).await;

    // 2: finishes the snapshot; killed inside a 300,000-row transaction.
    let child = spawn_child(dir.path(), 2);
    let snapshot_done = wait_for(Duration::from_secs(120), || {
        let done = lines(&dir.path().join("run2.lines"))
            .iter()
            .any(|l| l.kind == "heartbeat");
        async move { done }
    })
    .await;
    assert!(snapshot_done);
    admin
        .batch_execute("INSERT INTO t SELECT i, 'big' FROM generate_series(200001, 500000) i")
        .await
        .unwrap();
    let kept2 = kill_when(dir.path(), 2, child, |l, _| {
        l.iter().filter(|l| l.kind == "insert").count() > 50_000
    })
    .await;
    assert!(
        kept2.iter().any(|l| l.kind == "begin") && !kept2.iter().any(|l| l.kind == "commit"),
        "run 2 must stop inside the transaction"
    );
    walsender_gone(&admin, &db).await;

    // 3: delivers the rest, and a last insert.
    admin
        .batch_execute("INSERT INTO t VALUES (-1, 'last')")
        .await
        .unwrap();
    // Killed once the last insert's commit is in the committed offset.
    let kept3 = kill_when(dir.path(), 3, spawn_child(dir.path(), 3), |l, stored| {
        let last = format!("{:?}", Value::Int32(-1));
        let mut after_last = l.iter().skip_while(|l| l.id != last);
        after_last.any(|l| l.kind == "commit" && &l.position <= stored)
    })
    .await;
    walsender_gone(&admin, &db).await;

    let all: Vec<&Line> = kept1.iter().chain(&kept2).chain(&kept3).collect();
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "positions must increase across the runs"
    );
    let mut rows: BTreeMap<&str, usize> = BTreeMap::new();
    for l in all
        .iter()
        .filter(|l| l.kind == "read" || l.kind == "insert")
    {
        *rows.entry(l.id.as_str()).or_insert(0) += 1;
    }
    let repeated: Vec<_> = rows.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "repeated: {repeated:?}");
    assert_eq!(rows.len(), 100_000 + 300_000 + 1, "every row once");
    let commits = all.iter().filter(|l| l.kind == "commit").count();
    assert_eq!(commits, 2);
    println!(
        "kept per run: {} / {} / {} events",
        kept1.len(),
        kept2.len(),
        kept3.len()
    );
}
