//! Connector lifecycle: one supervised task per connector, target states kept in the
//! state store, and the Kafka Connect REST operations over them.
//!
//! The daemon only wires: what a connector class means comes from the source registry
//! ([`crate::sources`]), where its events go from the sink registry ([`crate::sinks`])
//! or the built-in lake and Kafka sinks. This module splits by concern:
//! - [`settings`]: a submitted config checked against the worker's, into everything a
//!   task needs (pure; the validate endpoint and `outflow validate` use it too);
//! - [`task`]: one connector's task, restarted on transient errors by the one retry
//!   schedule ([`outflow_core::RetryPolicy::TASK`]), with typed task states;
//! - [`connect_json`]: Kafka Connect's JSON shapes (connector files, `ConfigInfos`);
//! - this module: the worker's connectors and the REST operations on them.
//!
//! No REST call waits for a connector's I/O: pause, resume, stop, restart, reconfigure
//! and delete record the target, ask the task to stop and return; the next task (or the
//! PAUSED/STOPPED state) follows once the old one has flushed, and status shows when.
//! A deleted connector's task stores no more offsets while it winds down. SIGTERM
//! waits at most `task.shutdown.graceful.timeout.ms` (10 s) for the final flushes.
//! Secret values are masked by the one rule, [`outflow_core::config::masked`], in every
//! answer.

mod connect_json;
mod settings;
mod task;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use outflow_core::OffsetStore;
use outflow_core::config::{is_secret, masked};
use outflow_interchange::envelope::{EnvelopeConfig, EnvelopeFormatter};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::metrics::{ConnectorMetrics, ConnectorSample, render};
use crate::state::{StateStore, TargetState};

pub use connect_json::{connect_strings, parse_connector_json, validation_report};
pub use outflow_mysql::config::{MARIADB_CLASS, MYSQL_CLASS};
pub use outflow_postgres::plugin::POSTGRES_CLASS;
pub use settings::check;
use settings::{from_property_error, invalid, not_acted_on_of, validate};
use task::{TaskState, TaskStatus, run_connector, set};

/// Why a request about connectors failed (mapped to HTTP by the REST layer).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A property is wrong (400, naming it).
    #[error("Connector configuration is invalid: {property}: {message}")]
    Invalid {
        /// The property.
        property: String,
        /// What is wrong.
        message: String,
    },
    /// The name is taken (409).
    #[error("Connector {0} already exists")]
    Exists(String),
    /// No such connector (404).
    #[error("Connector {0} not found")]
    NotFound(String),
    /// The state store failed (500).
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

struct Managed {
    config: BTreeMap<String, String>,
    target: TargetState,
    status: Arc<Mutex<TaskStatus>>,
    metrics: Arc<ConnectorMetrics>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Set when the connector is deleted: its task, still winding down, stores no more
    /// offsets (the connector's are gone with it).
    retired: Arc<std::sync::atomic::AtomicBool>,
}

impl Managed {
    fn new(config: BTreeMap<String, String>, target: TargetState) -> Self {
        Self {
            config,
            target,
            status: Arc::new(Mutex::new(TaskStatus {
                state: TaskState::Unassigned,
                trace: None,
            })),
            metrics: Arc::default(),
            stop: CancellationToken::new(),
            task: None,
            retired: Arc::default(),
        }
    }
}

/// A connector's view of the state store: its offsets, unless it was deleted while its
/// task was still stopping (then late commits are dropped, not resurrected).
#[derive(Debug, Clone)]
struct ConnectorOffsets {
    store: StateStore,
    retired: Arc<std::sync::atomic::AtomicBool>,
}

impl OffsetStore for ConnectorOffsets {
    async fn load(
        &self,
        connector: &str,
    ) -> Result<Option<outflow_core::SourcePosition>, outflow_core::OffsetStoreError> {
        self.store.load(connector).await
    }

    async fn commit(
        &self,
        connector: &str,
        position: &outflow_core::SourcePosition,
    ) -> Result<outflow_core::CommitOutcome, outflow_core::OffsetStoreError> {
        if self.retired.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(outflow_core::CommitOutcome::Stale);
        }
        self.store.commit(connector, position).await
    }

    async fn owns_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> Result<bool, outflow_core::OffsetStoreError> {
        self.store.owns_resource(connector, resource).await
    }

    async fn record_resource(
        &self,
        connector: &str,
        resource: &str,
    ) -> Result<bool, outflow_core::OffsetStoreError> {
        self.store.record_resource(connector, resource).await
    }
}

/// The connector `name` looked up, or [`RuntimeError::NotFound`].
fn found<T>(connector: Option<T>, name: &str) -> Result<T, RuntimeError> {
    connector.ok_or_else(|| RuntimeError::NotFound(name.to_owned()))
}

/// KIP-875: offsets change only while the connector is STOPPED.
fn require_stopped(name: &str, managed: &Managed) -> Result<(), RuntimeError> {
    if managed.target == TargetState::Stopped {
        return Ok(());
    }
    Err(invalid(
        "state",
        format!(
            "Connectors must be in the STOPPED state before their offsets can be modified; stop {name} first (PUT /connectors/{name}/stop)"
        ),
    ))
}

/// The worker's connectors.
pub struct ConnectorRuntime {
    store: StateStore,
    worker: WorkerConfig,
    worker_id: String,
    connectors: tokio::sync::Mutex<BTreeMap<String, Managed>>,
    /// Tasks of deleted connectors that are still stopping: a connector created again
    /// under the same name starts after its predecessor is gone (one reader per slot).
    retiring: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for ConnectorRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorRuntime")
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl ConnectorRuntime {
    /// Loads the stored connectors and starts those whose target is RUNNING.
    pub async fn start(
        store: StateStore,
        worker: WorkerConfig,
        worker_id: String,
    ) -> Result<Arc<Self>, RuntimeError> {
        let runtime = Arc::new(Self {
            store,
            worker,
            worker_id,
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
            retiring: Mutex::new(BTreeMap::new()),
        });
        let stored = runtime.store.connectors().await?;
        let mut connectors = runtime.connectors.lock().await;
        for connector in stored {
            let mut managed = Managed::new(connector.config, connector.target);
            runtime.launch(&connector.name, &mut managed, None);
            connectors.insert(connector.name, managed);
        }
        drop(connectors);
        Ok(runtime)
    }

    /// Starts the task if the target is RUNNING; else records PAUSED/STOPPED. With
    /// `previous` (the task being stopped), the new task starts, or the state is
    /// recorded, once that one has finished its final flush: callers never wait for
    /// a connector's I/O (a paused broker holds a flush for as long as it is paused).
    fn launch(
        &self,
        name: &str,
        managed: &mut Managed,
        previous: Option<tokio::task::JoinHandle<()>>,
    ) {
        let idle = match managed.target {
            TargetState::Paused => Some(TaskState::Paused),
            TargetState::Stopped => Some(TaskState::Stopped),
            TargetState::Running => None,
        };
        if let Some(state) = idle {
            match previous {
                None => set(&managed.status, state, None),
                Some(previous) => {
                    let status = Arc::clone(&managed.status);
                    managed.task = Some(tokio::spawn(async move {
                        let _ = previous.await;
                        set(&status, state, None);
                    }));
                }
            }
            return;
        }
        crate::panics::register_secrets(
            managed
                .config
                .iter()
                .filter(|(key, _)| is_secret(key))
                .map(|(_, value)| value),
        );
        match validate(&self.worker, name, &managed.config) {
            Ok(validated) => {
                managed.stop = CancellationToken::new();
                let run = run_connector(
                    name.to_owned(),
                    validated,
                    ConnectorOffsets {
                        store: self.store.clone(),
                        retired: Arc::clone(&managed.retired),
                    },
                    Arc::clone(&managed.status),
                    Arc::clone(&managed.metrics),
                    managed.stop.clone(),
                );
                let stop = managed.stop.clone();
                managed.task = Some(tokio::spawn(async move {
                    if let Some(previous) = previous {
                        let _ = previous.await;
                    }
                    if !stop.is_cancelled() {
                        run.await;
                    }
                }));
                tracing::info!(connector = %name, "connector started");
                for warning in not_acted_on_of(&managed.config) {
                    tracing::warn!(connector = %name, "{warning}");
                }
            }
            Err(e) => {
                if let Some(previous) = previous {
                    managed.task = Some(previous);
                }
                set(&managed.status, TaskState::Failed, Some(e.to_string()));
            }
        }
    }

    /// Asks a connector's task to stop (it flushes and commits what is durable, then
    /// ends) and returns it, without waiting.
    fn halt(managed: &mut Managed) -> Option<tokio::task::JoinHandle<()>> {
        managed.stop.cancel();
        managed.task.take()
    }

    /// Validates, stores and starts a new connector in `initial` (Kafka Connect's
    /// `initial_state`, KIP-980). With `offsets` (the body `GET /connectors/{name}/offsets`
    /// answers, on this worker or on a Kafka Connect worker running Debezium) the
    /// connector starts from that position instead of snapshotting: it is stored STOPPED,
    /// its offset written, and only then moved to `initial`, so a failure on the way
    /// leaves a STOPPED connector, never one that re-reads the database.
    pub async fn create(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
        initial: TargetState,
        offsets: Option<&Value>,
    ) -> Result<Value, RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        if connectors.contains_key(name) {
            return Err(RuntimeError::Exists(name.to_owned()));
        }
        validate(&self.worker, name, &config)?;
        let position = match offsets {
            Some(body) => position_of_offsets(&config, body)?,
            None => None,
        };
        if let Some(position) = &position {
            self.store
                .put_connector(name, &config, TargetState::Stopped)
                .await?;
            self.store.set_offset(name, position).await?;
            tracing::info!(connector = %name, offset = %position.debezium_offset(), "connector created at the given offset");
        }
        if position.is_none() || initial != TargetState::Stopped {
            self.store.put_connector(name, &config, initial).await?;
        }
        let mut managed = Managed::new(config, initial);
        let previous = self
            .retiring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        self.launch(name, &mut managed, previous);
        let info = Self::info_of(name, &managed);
        connectors.insert(name.to_owned(), managed);
        Ok(info)
    }

    fn info_of(name: &str, managed: &Managed) -> Value {
        connect_json::connector_info(name, &managed.config)
    }

    /// `PUT /connectors/{name}/config`: creates (true) or reconfigures (false) a
    /// connector; a running one restarts with the new config from its durable position.
    pub async fn put_config(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
    ) -> Result<(bool, Value), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let Some(managed) = connectors.get_mut(name) else {
            drop(connectors);
            return self
                .create(name, config, TargetState::Running, None)
                .await
                .map(|info| (true, info));
        };
        validate(&self.worker, name, &config)?;
        self.store
            .put_connector(name, &config, managed.target)
            .await?;
        let previous = Self::halt(managed);
        managed.config = config;
        self.launch(name, managed, previous);
        Ok((false, Self::info_of(name, managed)))
    }

    /// `GET /connectors/{name}/tasks`: the one task, with its config (masked).
    pub async fn tasks(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = found(connectors.get(name), name)?;
        Ok(json!([{
            "id": {"connector": name, "task": 0},
            "config": masked(&managed.config),
        }]))
    }

    /// Connector names.
    pub async fn names(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// `GET /connectors/{name}`.
    pub async fn info(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = found(connectors.get(name), name)?;
        Ok(Self::info_of(name, managed))
    }

    /// `GET /connectors/{name}/config` (secrets masked).
    pub async fn config(&self, name: &str) -> Result<BTreeMap<String, String>, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = found(connectors.get(name), name)?;
        Ok(masked(&managed.config))
    }

    /// `GET /connectors/{name}/status`.
    pub async fn status(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = found(connectors.get(name), name)?;
        let status = managed
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let connector_state = status.state.connector_state().as_str();
        let mut task =
            json!({"id": 0, "state": status.state.as_str(), "worker_id": self.worker_id});
        if let Some(trace) = status.trace {
            task["trace"] = Value::String(trace);
        }
        let mut body = json!({
            "name": name,
            "connector": {"state": connector_state, "worker_id": self.worker_id},
            "tasks": if managed.target == TargetState::Stopped { json!([]) } else { json!([task]) },
            "type": "source",
        });
        let warnings = not_acted_on_of(&managed.config);
        if !warnings.is_empty() {
            body["warnings"] = json!(warnings);
        }
        if status.state == TaskState::Running
            && let Some(snapshot) = managed.metrics.snapshot_status()
        {
            body["snapshot"] = snapshot;
        }
        Ok(body)
    }

    /// The worker's config (for validation requests).
    pub fn worker(&self) -> &WorkerConfig {
        &self.worker
    }

    /// `GET /metrics`: the Prometheus text of every connector.
    pub async fn metrics_text(&self) -> String {
        let connectors = self.connectors.lock().await;
        let states: Vec<(&String, &'static str, &Arc<ConnectorMetrics>)> = connectors
            .iter()
            .map(|(name, m)| {
                let state = m
                    .status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .state
                    .as_str();
                (name, state, &m.metrics)
            })
            .collect();
        let samples: Vec<ConnectorSample<'_>> = states
            .iter()
            .map(|(name, state, metrics)| ConnectorSample {
                name,
                state,
                metrics,
            })
            .collect();
        render(&samples)
    }

    /// `PUT /connectors/{name}/pause|resume|stop`.
    pub async fn set_target(&self, name: &str, target: TargetState) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let managed = found(connectors.get_mut(name), name)?;
        self.store.set_target(name, target).await?;
        managed.target = target;
        let previous = Self::halt(managed);
        self.launch(name, managed, previous);
        Ok(())
    }

    /// `POST /connectors/{name}/restart`.
    pub async fn restart(&self, name: &str) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let managed = found(connectors.get_mut(name), name)?;
        let previous = Self::halt(managed);
        self.launch(name, managed, previous);
        Ok(())
    }

    /// `DELETE /connectors/{name}`: stops it and removes its config and offsets.
    pub async fn delete(&self, name: &str) -> Result<(), RuntimeError> {
        let mut connectors = self.connectors.lock().await;
        let mut managed = found(connectors.remove(name), name)?;
        managed
            .retired
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(task) = Self::halt(&mut managed) {
            let mut retiring = self.retiring.lock().unwrap_or_else(PoisonError::into_inner);
            retiring.retain(|_, t| !t.is_finished());
            retiring.insert(name.to_owned(), task);
        }
        self.store.delete_connector(name).await?;
        tracing::info!(connector = %name, "connector deleted");
        Ok(())
    }

    /// `GET /connectors/{name}/offsets`: Kafka Connect's shape, Debezium's offset fields.
    pub async fn offsets(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = found(connectors.get(name), name)?;
        let server = managed
            .config
            .get("topic.prefix")
            .cloned()
            .unwrap_or_default();
        drop(connectors);
        let position = outflow_core::OffsetStore::load(&self.store, name)
            .await
            .map_err(|e| invalid("offsets", e.to_string()))?;
        let offsets: Vec<Value> = position
            .iter()
            .map(|p| {
                json!({
                    "partition": {"server": server},
                    "offset": p.debezium_offset(),
                })
            })
            .collect();
        Ok(json!({ "offsets": offsets }))
    }

    /// `DELETE /connectors/{name}/offsets` (KIP-875): only while STOPPED.
    pub async fn reset_offsets(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = found(connectors.get(name), name)?;
        require_stopped(name, managed)?;
        self.store.reset_offsets(name).await?;
        Ok(json!({"message": "The offsets for this connector have been reset successfully"}))
    }

    /// `PATCH /connectors/{name}/offsets` (KIP-875 alter): only while STOPPED. `body` is
    /// `{"offsets": [{"partition": {"server": <topic.prefix>}, "offset": <Debezium offset
    /// or null>}]}`; a null offset resets.
    pub async fn alter_offsets(&self, name: &str, body: &Value) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = found(connectors.get(name), name)?;
        require_stopped(name, managed)?;
        match position_of_offsets(&managed.config, body)? {
            None => self.store.reset_offsets(name).await?,
            Some(position) => self.store.set_offset(name, &position).await?,
        }
        drop(connectors);
        tracing::info!(connector = %name, "offsets altered");
        Ok(json!({"message": "The offsets for this connector have been altered successfully"}))
    }

    /// `GET /connectors/{name}/topics`: the topics of the tables the connector has
    /// delivered events of since this worker started, named as the envelope names them.
    pub async fn topics(&self, name: &str) -> Result<Value, RuntimeError> {
        let connectors = self.connectors.lock().await;
        let managed = found(connectors.get(name), name)?;
        let class = class_of(&managed.config)?;
        let envelope = EnvelopeConfig::from_properties(class.source_block, &managed.config)
            .map_err(from_property_error)?;
        let formatter = EnvelopeFormatter::new(envelope);
        let topics: std::collections::BTreeSet<String> = managed
            .metrics
            .pipeline
            .table_ops()
            .keys()
            .filter_map(|table| table.split_once('.'))
            .map(|(schema, table)| formatter.topic_for(&outflow_core::TableId::new(schema, table)))
            .collect();
        Ok(json!({ name: {"topics": topics} }))
    }

    /// Stops every task after its final flush (SIGTERM), waiting at most
    /// `task.shutdown.graceful.timeout.ms` for them.
    pub async fn shutdown(&self) {
        let mut tasks: Vec<tokio::task::JoinHandle<()>> = {
            let mut connectors = self.connectors.lock().await;
            connectors.values_mut().filter_map(Self::halt).collect()
        };
        tasks.extend(
            std::mem::take(&mut *self.retiring.lock().unwrap_or_else(PoisonError::into_inner))
                .into_values(),
        );
        let timeout = self.worker.task_shutdown_timeout;
        let all = async {
            for task in &mut tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            let waiting = tasks.iter().filter(|t| !t.is_finished()).count();
            tracing::warn!(
                connectors = waiting,
                timeout_ms = timeout.as_millis() as u64,
                "connectors did not stop within task.shutdown.graceful.timeout.ms; exiting without their last flush (they resume from their last durable offset)"
            );
            for task in &tasks {
                task.abort();
            }
        }
    }
}

/// The position an offsets body names for a connector of `config`: Kafka Connect's
/// `{"offsets": [{"partition": {"server": <topic.prefix>}, "offset": <Debezium offset or
/// null>}]}`, as `GET /connectors/{name}/offsets` answers it here and on a Kafka Connect
/// worker running Debezium. `None` for a null offset (a reset). A 400 naming `offsets`
/// for any other shape, another partition, or an offset of another connector class.
fn position_of_offsets(
    config: &BTreeMap<String, String>,
    body: &Value,
) -> Result<Option<outflow_core::SourcePosition>, RuntimeError> {
    let server = config.get("topic.prefix").cloned().unwrap_or_default();
    let Some(entries) = body.get("offsets").and_then(Value::as_array) else {
        return Err(invalid(
            "offsets",
            "expected {\"offsets\": [{\"partition\", \"offset\"}]}",
        ));
    };
    let [entry] = entries.as_slice() else {
        return Err(invalid(
            "offsets",
            format!(
                "a Debezium connector has one source partition ({{\"server\": \"{server}\"}}); give exactly one entry"
            ),
        ));
    };
    if entry["partition"]["server"].as_str() != Some(server.as_str()) {
        return Err(invalid(
            "offsets",
            format!(
                "the partition must be {{\"server\": \"{server}\"}} (the connector's topic.prefix)"
            ),
        ));
    }
    let offset = &entry["offset"];
    if offset.is_null() {
        return Ok(None);
    }
    let class = class_of(config)?;
    outflow_core::SourcePosition::from_debezium_offset(offset, &[class.positions])
        .map(Some)
        .ok_or_else(|| {
            invalid(
                "offsets",
                format!(
                    "the offset is not one of {}'s Debezium offsets, or Debezium took it inside its initial snapshot (let that snapshot finish first)",
                    class.name
                ),
            )
        })
}

/// The connector class a stored config names (`connector.class`, by any of its names);
/// a 400 naming the property when this worker runs no such class.
fn class_of(
    config: &BTreeMap<String, String>,
) -> Result<&'static outflow_core::connector::ConnectorClass, RuntimeError> {
    config
        .get("connector.class")
        .and_then(|class| crate::sources::class(class))
        .map(|(_, class)| class)
        .ok_or_else(|| invalid("connector.class", "not a class this worker runs"))
}
