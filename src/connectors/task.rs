//! One connector's task: build the source and the sink, run the pipeline, and on a
//! transient error start again from the durable position.
//!
//! Restarts wait on [`RetryPolicy::TASK`] (1 s → 60 s; status RESTARTING with the error
//! as `trace` meanwhile); an attempt that stored a newer position, or ran five minutes,
//! starts the schedule over, so twenty separate faults an hour apart never wait a
//! minute. Definite errors leave the task FAILED with the error chain in `trace`. A
//! panic in a task is caught and reported as FAILED; the worker goes on.

use std::sync::{Arc, Mutex, PoisonError};

use outflow_core::{Classify, ErrorClass, Pipeline, PipelineError};
use outflow_core::{OffsetStore, RetryPolicy};
use outflow_interchange::encoding::RecordEncoder;
use outflow_interchange::encoding::http_registry::HttpSchemaRegistry;
use outflow_interchange::envelope::EnvelopeFormatter;
use outflow_interchange::stage::StageParts;
use outflow_interchange::transforms::TransformChain;
use tokio_util::sync::CancellationToken;

use super::ConnectorOffsets;
use super::settings::{SinkSettings, Validated};
use crate::config::ConverterKind;
use crate::metrics::ConnectorMetrics;

/// A task's state, as Kafka Connect's status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskState {
    /// Not started yet, or ended by itself (a finite source).
    Unassigned,
    /// Reading and delivering.
    Running,
    /// Waiting to start again after a transient error.
    Restarting,
    /// Stopped by request, config and offsets kept; resumes on request.
    Paused,
    /// Stopped by request (KIP-875); offsets may be altered.
    Stopped,
    /// Stopped by a definite error; the trace says what to do.
    Failed,
}

impl TaskState {
    /// The name status uses.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "UNASSIGNED",
            Self::Running => "RUNNING",
            Self::Restarting => "RESTARTING",
            Self::Paused => "PAUSED",
            Self::Stopped => "STOPPED",
            Self::Failed => "FAILED",
        }
    }

    /// The connector's state while its one task is in this one: a task between
    /// attempts, or not yet started, still belongs to a running connector.
    pub(super) fn connector_state(self) -> Self {
        match self {
            Self::Failed | Self::Paused | Self::Stopped => self,
            Self::Unassigned | Self::Running | Self::Restarting => Self::Running,
        }
    }
}

/// State of a connector's task, as status reports it.
#[derive(Debug, Clone)]
pub(super) struct TaskStatus {
    pub(super) state: TaskState,
    /// The error chain of the last failure, while it matters (RESTARTING, FAILED).
    pub(super) trace: Option<String>,
}

/// Records the task's state.
pub(super) fn set(status: &Mutex<TaskStatus>, state: TaskState, trace: Option<String>) {
    *status.lock().unwrap_or_else(PoisonError::into_inner) = TaskStatus { state, trace };
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str("\nCaused by: ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs one connector until stopped or failed.
pub(super) async fn run_connector(
    name: String,
    validated: Validated,
    store: ConnectorOffsets,
    status: Arc<Mutex<TaskStatus>>,
    metrics: Arc<ConnectorMetrics>,
    stop: CancellationToken,
) {
    let mut backoff = RetryPolicy::TASK.schedule();
    loop {
        set(&status, TaskState::Running, None);
        metrics.task_started();
        let started = tokio::time::Instant::now();
        let commits_before = metrics
            .pipeline
            .offset_commits
            .load(std::sync::atomic::Ordering::Relaxed);
        let attempt = crate::panics::CatchPanic::new(async {
            let encoder = match (&validated.converter, &validated.registry) {
                (ConverterKind::Avro, Some(registry)) => RecordEncoder::Avro(Box::new(
                    outflow_interchange::encoding::registry::AvroSerializer::new(
                        HttpSchemaRegistry::new(registry.clone()).map_err(|e| {
                            outflow_core::SinkError::definite_with(
                                "creating the schema registry client",
                                "check schema.registry.*",
                                e,
                            )
                        })?,
                        Default::default(),
                        Default::default(),
                    ),
                )),
                _ => RecordEncoder::Json {
                    schemas_enable: validated.schemas_enable,
                },
            };
            let transforms = TransformChain::from_properties(&validated.props).map_err(|e| {
                outflow_core::SinkError::definite("reading transforms", e.to_string())
            })?;
            let formatter = EnvelopeFormatter::new(validated.envelope.clone());
            let mut pipeline_config = validated.pipeline.clone();
            let SinkSettings { plugin, plan } = &validated.sink;
            if let Some(interval) = plan.checkpoint_interval() {
                pipeline_config.checkpoint_interval = interval;
            }
            let sink = plan
                .start(StageParts {
                    metrics: metrics.sink_for(plugin.name(), || plugin.metrics()),
                    formatter,
                    transforms,
                    encoder,
                    committed: store.load(&name).await?,
                    positions: validated.positions,
                })
                .await?;
            let spool_dir = &validated.source_env.spool_dir;
            let removed = clear_spool(spool_dir).map_err(|e| {
                outflow_core::SinkError::definite_with(
                    format!("preparing the spool dir {}", spool_dir.display()),
                    "make the data dir writable",
                    e,
                )
            })?;
            if removed > 0 {
                tracing::info!(connector = %name, removed, "removed spool files left by an earlier run");
            }
            let source_metrics = metrics.source_for(validated.plugin);
            Pipeline::new(
                name.clone(),
                validated.source.build(&source_metrics),
                sink,
                store.clone(),
                pipeline_config,
            )
            .with_metrics(Arc::clone(&metrics.pipeline))
            .run(stop.clone())
            .await
            .map(|_| ())
        });
        let result: Result<(), PipelineError> = match attempt.await {
            Ok(result) => result,
            Err(panicked) => {
                // The hook has logged where; the status says what to do.
                set(&status, TaskState::Failed, Some(panicked.to_string()));
                return;
            }
        };
        match result {
            Ok(()) => {
                tracing::info!(connector = %name, "connector task ended");
                if !stop.is_cancelled() {
                    set(&status, TaskState::Unassigned, None);
                }
                return;
            }
            Err(e) if e.class() == ErrorClass::Transient && !stop.is_cancelled() => {
                // An attempt that made progress (stored a newer position) or ran long
                // starts the backoff over: a fault now is a new fault, not the same
                // one repeating.
                let progressed = metrics
                    .pipeline
                    .offset_commits
                    .load(std::sync::atomic::Ordering::Relaxed)
                    > commits_before;
                backoff.attempt_ended(started.elapsed(), progressed);
                let delay = backoff.next_delay();
                tracing::warn!(connector = %name, error = %chain(&e).replace("\nCaused by: ", ": "), retry_in = ?delay, "connector failed; restarting from its durable position");
                set(&status, TaskState::Restarting, Some(chain(&e)));
                metrics
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => {
                if stop.is_cancelled() {
                    return;
                }
                tracing::error!(connector = %name, error = %chain(&e).replace("\nCaused by: ", ": "), "connector failed");
                set(&status, TaskState::Failed, Some(chain(&e)));
                return;
            }
        }
    }
}

/// Makes a connector's spool dir exist and empty. Spool files are unlinked when made, so
/// only a crash in that instant leaves one; a (re)start removes whatever is there.
pub(super) fn clear_spool(dir: &std::path::Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
