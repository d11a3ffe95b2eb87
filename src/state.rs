//! The daemon's embedded state: connector configurations, their target states, and
//! offsets, in one SQLite database in the data dir (`<data.dir>/state.db`).
//!
//! Why SQLite (decision, issue 6): the most widely deployed crash-safe embedded store; a
//! transaction is durable when `COMMIT` returns (WAL journal, `synchronous=FULL`), which is
//! exactly the guarantee an offset commit needs; one file to back up; readable with the
//! `sqlite3` tool when operators need to look. The database is opened by one daemon at a
//! time (the data dir's lock, `main.rs`).
//!
//! Offsets follow the never-backward rule of [`outflow_core::offsets::advance`], checked
//! and written in one transaction. Calls run on the blocking pool; commits are short.
//! The file holds connector configs with their secrets, so it is created owner-only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use outflow_core::offsets::{CommitOutcome, advance};
use outflow_core::{OffsetStore, OffsetStoreError, SourcePosition};
use rusqlite::{Connection, OptionalExtension, params};

/// What an operator asked a connector to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Running.
    Running,
    /// Paused: connected, not reading.
    Paused,
    /// Stopped: no tasks, offsets may be altered.
    Stopped,
}

impl TargetState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Stopped => "STOPPED",
        }
    }

    /// The state named as Kafka Connect names it (`RUNNING`, `PAUSED`, `STOPPED`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RUNNING" => Some(Self::Running),
            "PAUSED" => Some(Self::Paused),
            "STOPPED" => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// A stored connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnector {
    /// Its name.
    pub name: String,
    /// Its configuration, as submitted (secrets included: the daemon needs them).
    pub config: BTreeMap<String, String>,
    /// What it should be doing.
    pub target: TargetState,
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite refused.
    #[error("state store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// Stored data that does not parse (a damaged or foreign file).
    #[error("state store {path}: {what}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The file's permissions cannot be made owner-only (it holds secrets).
    #[error(
        "state store {path}: cannot make it owner-only (mode 0600): {source}; it holds connector passwords: fix the data dir's ownership or choose another data.dir"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The blocking task failed.
    #[error("state store task: {0}")]
    Task(String),
}

/// Makes `path` owner-only, creating it empty (with mode 0600 from the first byte) when
/// it is missing; an existing file with wider permissions is narrowed. SQLite gives its
/// `-wal` and `-shm` files the database file's mode, so this covers them once they are
/// made; existing ones are narrowed too.
fn owner_only(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let failed = |source| StateError::Permissions {
        path: path.to_owned(),
        source,
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    let mut companions = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        companions.push(PathBuf::from(name));
    }
    for file in companions {
        let mode = match std::fs::metadata(&file) {
            Ok(meta) => meta.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(failed(e)),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(failed)?;
            let now = std::fs::metadata(&file)
                .map_err(failed)?
                .permissions()
                .mode();
            if now & 0o077 != 0 {
                return Err(failed(std::io::Error::other(format!(
                    "mode is still {:o} after chmod",
                    now & 0o777
                ))));
            }
        }
    }
    Ok(())
}

/// The embedded store. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    /// What a stored position can be: the registered classes' families.
    positions: Arc<[&'static dyn outflow_core::PositionFamily]>,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS connectors (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        target TEXT NOT NULL,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE TABLE IF NOT EXISTS resources (
        connector TEXT NOT NULL,
        resource TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (connector, resource)
    );
    CREATE TABLE IF NOT EXISTS offsets (
        connector TEXT PRIMARY KEY,
        position TEXT NOT NULL,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );";

impl StateStore {
    /// Opens (creating when missing) `<data_dir>/state.db`.
    pub fn open(data_dir: &Path) -> Result<Self, StateError> {
        let path = data_dir.join("state.db");
        let sqlite = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        owner_only(&path)?;
        let connection = Connection::open(&path).map_err(sqlite)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(sqlite)?;
        connection.execute_batch(SCHEMA).map_err(sqlite)?;
        Ok(Self {
            path,
            connection: Arc::new(Mutex::new(connection)),
            positions: crate::sources::positions().into(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &StateStore) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = store
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            f(&mut connection, &store)
        })
        .await
        .map_err(|e| StateError::Task(e.to_string()))?
    }

    /// Creates or replaces a connector.
    pub async fn put_connector(
        &self,
        name: &str,
        config: &BTreeMap<String, String>,
        target: TargetState,
    ) -> Result<(), StateError> {
        let name = name.to_owned();
        let config = serde_json::to_string(config).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            what: e.to_string(),
        })?;
        self.with(move |c, s| {
            c.execute(
                "INSERT INTO connectors (name, config, target) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET config = excluded.config, \
                 target = excluded.target, updated_at = excluded.updated_at",
                params![name, config, target.as_str()],
            )
            .map_err(|e| s.sqlite(e))?;
            Ok(())
        })
        .await
    }

    /// Sets a connector's target state; false when there is no such connector.
    pub async fn set_target(&self, name: &str, target: TargetState) -> Result<bool, StateError> {
        let name = name.to_owned();
        self.with(move |c, s| {
            let changed = c
                .execute(
                    "UPDATE connectors SET target = ?2 WHERE name = ?1",
                    params![name, target.as_str()],
                )
                .map_err(|e| s.sqlite(e))?;
            Ok(changed == 1)
        })
        .await
    }

    /// Every stored connector, by name.
    pub async fn connectors(&self) -> Result<Vec<StoredConnector>, StateError> {
        self.with(|c, s| {
            let mut statement = c
                .prepare("SELECT name, config, target FROM connectors ORDER BY name")
                .map_err(|e| s.sqlite(e))?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })
                .map_err(|e| s.sqlite(e))?;
            let mut out = Vec::new();
            for row in rows {
                let (name, config, target) = row.map_err(|e| s.sqlite(e))?;
                let corrupt = |what: String| StateError::Corrupt {
                    path: s.path.clone(),
                    what,
                };
                out.push(StoredConnector {
                    config: serde_json::from_str(&config)
                        .map_err(|e| corrupt(format!("connector {name}: config: {e}")))?,
                    target: TargetState::parse(&target)
                        .ok_or_else(|| corrupt(format!("connector {name}: state {target}")))?,
                    name,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Removes a connector and its offsets; false when there was none.
    pub async fn delete_connector(&self, name: &str) -> Result<bool, StateError> {
        let name = name.to_owned();
        self.with(move |c, s| {
            let tx = c.transaction().map_err(|e| s.sqlite(e))?;
            let removed = tx
                .execute("DELETE FROM connectors WHERE name = ?1", params![name])
                .map_err(|e| s.sqlite(e))?;
            tx.execute("DELETE FROM offsets WHERE connector = ?1", params![name])
                .map_err(|e| s.sqlite(e))?;
            tx.commit().map_err(|e| s.sqlite(e))?;
            Ok(removed == 1)
        })
        .await
    }

    /// Forgets a connector's offsets (KIP-875 reset; the caller checks it is stopped).
    pub async fn reset_offsets(&self, name: &str) -> Result<(), StateError> {
        let name = name.to_owned();
        self.with(move |c, s| {
            c.execute("DELETE FROM offsets WHERE connector = ?1", params![name])
                .map_err(|e| s.sqlite(e))?;
            Ok(())
        })
        .await
    }

    /// Replaces the connector's stored position (KIP-875 alter, by an operator while
    /// the connector is stopped; may move it backward, which the pipeline never does).
    pub async fn set_offset(
        &self,
        name: &str,
        position: &SourcePosition,
    ) -> Result<(), StateError> {
        let name = name.to_owned();
        let text = position.to_json();
        self.with(move |c, s| {
            c.execute(
                "INSERT INTO offsets (connector, position) VALUES (?1, ?2) \
                 ON CONFLICT (connector) DO UPDATE SET position = excluded.position",
                params![name, text],
            )
            .map_err(|e| s.sqlite(e))?;
            Ok(())
        })
        .await
    }

    fn load_position(
        c: &Connection,
        s: &StateStore,
        connector: &str,
    ) -> Result<Option<SourcePosition>, StateError> {
        let text: Option<String> = c
            .query_row(
                "SELECT position FROM offsets WHERE connector = ?1",
                params![connector],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| s.sqlite(e))?;
        text.map(|t| {
            SourcePosition::from_json(&t, &s.positions).map_err(|e| StateError::Corrupt {
                path: s.path.clone(),
                what: format!("offset of {connector}: {e}"),
            })
        })
        .transpose()
    }
}

fn offset_error(e: StateError) -> OffsetStoreError {
    match e {
        StateError::Corrupt { .. } => OffsetStoreError::definite_with(
            "reading the embedded state store",
            "restore state.db from a backup, or reset the connector's offsets",
            e,
        ),
        other => OffsetStoreError::transient("using the embedded state store", other),
    }
}

impl OffsetStore for StateStore {
    async fn load(&self, connector: &str) -> Result<Option<SourcePosition>, OffsetStoreError> {
        let connector = connector.to_owned();
        self.with(move |c, s| Self::load_position(c, s, &connector))
            .await
            .map_err(offset_error)
    }

    async fn commit(
        &self,
        connector: &str,
        position: &SourcePosition,
    ) -> Result<CommitOutcome, OffsetStoreError> {
        let connector = connector.to_owned();
        let position = position.clone();
        self.with(move |c, s| {
            let tx = c.transaction().map_err(|e| s.sqlite(e))?;
            let mut stored = Self::load_position(&tx, s, &connector)?;
            let outcome = advance(&mut stored, &position);
            if outcome == CommitOutcome::Advanced {
                tx.execute(
                    "INSERT INTO offsets (connector, position) VALUES (?1, ?2) \
                     ON CONFLICT (connector) DO UPDATE SET position = excluded.position, \
                     updated_at = excluded.updated_at",
                    params![connector, position.to_json()],
                )
                .map_err(|e| s.sqlite(e))?;
            }
            tx.commit().map_err(|e| s.sqlite(e))?;
            Ok(outcome)
        })
        .await
        .map_err(offset_error)
    }

    async fn owns_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> Result<bool, OffsetStoreError> {
        let (connector, resource) = (connector.to_owned(), resource.to_owned());
        self.with(move |c, s| {
            c.query_row(
                "SELECT 1 FROM resources WHERE connector = ?1 AND resource = ?2",
                params![connector, resource],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
            .map_err(|e| s.sqlite(e))
        })
        .await
        .map_err(offset_error)
    }

    async fn record_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> Result<bool, OffsetStoreError> {
        let (connector, resource) = (connector.to_owned(), resource.to_owned());
        self.with(move |c, s| {
            c.execute(
                "INSERT INTO resources (connector, resource) VALUES (?1, ?2) \
                 ON CONFLICT (connector, resource) DO NOTHING",
                params![connector, resource],
            )
            .map_err(|e| s.sqlite(e))?;
            Ok(true)
        })
        .await
        .map_err(offset_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outflow_postgres::position::{Lsn, PgPosition};

    #[tokio::test]
    async fn the_database_and_its_journal_files_are_owner_only_even_when_they_were_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        // A state.db from an older version (or copied by hand) readable by everyone.
        let path = dir.path().join("state.db");
        drop(StateStore::open(dir.path()).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.commit("c", &at(1)).await.unwrap();
        for name in ["state.db", "state.db-wal", "state.db-shm"] {
            let file = dir.path().join(name);
            if let Ok(meta) = std::fs::metadata(&file) {
                let mode = meta.permissions().mode();
                assert_eq!(mode & 0o077, 0, "{name} has mode {:o}", mode & 0o777);
            }
        }
        assert!(
            dir.path().join("state.db-wal").exists(),
            "WAL journal in use"
        );
    }

    fn at(lsn: u64) -> SourcePosition {
        SourcePosition::from(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(lsn),
            lsn: Lsn(lsn),
            seq: 0,
            tx_id: None,
            snapshot: false,
        })
    }

    #[tokio::test]
    async fn connectors_and_offsets_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let config: BTreeMap<String, String> = [(
            "connector.class".to_owned(),
            "io.debezium.connector.postgresql.PostgresConnector".to_owned(),
        )]
        .into();
        store
            .put_connector("inventory", &config, TargetState::Running)
            .await
            .unwrap();
        assert_eq!(
            store.commit("inventory", &at(10)).await.unwrap(),
            CommitOutcome::Advanced
        );
        assert_eq!(
            store.commit("inventory", &at(20)).await.unwrap(),
            CommitOutcome::Advanced
        );
        assert_eq!(
            store.commit("inventory", &at(15)).await.unwrap(),
            CommitOutcome::Stale
        );
        assert!(
            store
                .set_target("inventory", TargetState::Paused)
                .await
                .unwrap()
        );
        assert!(!store.set_target("nope", TargetState::Paused).await.unwrap());
        drop(store);

        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load("inventory").await.unwrap(), Some(at(20)));
        assert_eq!(
            store.connectors().await.unwrap(),
            [StoredConnector {
                name: "inventory".into(),
                config,
                target: TargetState::Paused
            }]
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "owner-only: it holds secrets");

        store.reset_offsets("inventory").await.unwrap();
        assert_eq!(store.load("inventory").await.unwrap(), None);
        store.commit("inventory", &at(5)).await.unwrap();
        assert!(store.delete_connector("inventory").await.unwrap());
        assert_eq!(store.load("inventory").await.unwrap(), None);
        assert!(store.connectors().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_damaged_offset_is_a_definite_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store
            .with(|c, _| {
                c.execute(
                    "INSERT INTO offsets (connector, position) VALUES ('x', 'not json')",
                    [],
                )
                .unwrap();
                Ok(())
            })
            .await
            .unwrap();
        let err = store.load("x").await.unwrap_err();
        assert_eq!(
            outflow_core::Classify::class(&err),
            outflow_core::ErrorClass::Definite
        );
    }
}
