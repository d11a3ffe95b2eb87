//! The `outflow` binary: CLI, worker config, REST API, and (as connectors land) the
//! connector supervisor. It wires crates together and holds no CDC logic.

use outflow::{connectors, rest, state};

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use outflow::config::{ConfigError, RawWorkerConfig, WorkerConfig};

/// mimalloc: the hot path allocates many small, short-lived values (rows, records); it is
/// markedly faster there than the system allocator (see `core/benches/encode.rs`).
/// Tuned for footprint by [`outflow::allocator::tune`].
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Change-data-capture from PostgreSQL and MySQL/MariaDB to Kafka or a data lake,
/// Debezium-compatible.
#[derive(Debug, Parser)]
#[command(name = "outflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the worker: REST API (Kafka Connect-compatible) and connectors.
    ///
    /// Works with no config file at all: REST on 127.0.0.1:8083, state in ./data, lake
    /// sink. Every config key can be overridden by an OUTFLOW_* environment variable
    /// (rest.listen → OUTFLOW_REST_LISTEN).
    Serve {
        /// Worker config file (TOML).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Check a connector config (Kafka Connect's JSON: {"name", "config"}) against the
    /// worker config; prints Kafka Connect's validation result. Exit 0 if valid, 1 if not.
    Validate {
        /// The connector file.
        #[arg(long, short = 'f', value_name = "PATH")]
        file: PathBuf,
        /// Worker config file (TOML).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Manage connectors stored in the data dir (Debezium Server style: they start with
    /// the next `outflow serve`).
    Connectors {
        #[command(subcommand)]
        action: ConnectorsCommand,
    },
    /// Move a connector from a Kafka Connect worker running Debezium to a running outflow
    /// worker without a new snapshot: stops it on Kafka Connect, takes its offsets, and
    /// creates it on outflow at that position (same slot or binlog, same topics).
    Migrate {
        /// The Kafka Connect worker's REST URL (with --connector).
        #[arg(long, value_name = "URL", requires = "connector", conflicts_with_all = ["config", "offsets"])]
        from: Option<String>,
        /// The connector's name on the Kafka Connect worker.
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
        /// Instead of --from: the connector as `GET /connectors/{name}` gave it.
        #[arg(long, value_name = "PATH", requires = "offsets")]
        config: Option<PathBuf>,
        /// Instead of --from: its offsets as `GET /connectors/{name}/offsets` gave them.
        #[arg(long, value_name = "PATH", requires = "config")]
        offsets: Option<PathBuf>,
        /// The outflow worker's REST URL.
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8083")]
        to: String,
        /// The connector's name on outflow (default: its name on Kafka Connect).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Print version and build commit.
    Version,
}

#[derive(Debug, Subcommand)]
enum ConnectorsCommand {
    /// Validate and store a connector (Kafka Connect's JSON: {"name", "config"}); it runs
    /// when the worker starts. Refused while a worker holds the data dir: POST the file
    /// to its REST API instead.
    Create {
        /// The connector file.
        #[arg(long, short = 'f', value_name = "PATH")]
        file: PathBuf,
        /// Worker config file (TOML).
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
    },
}

/// Why `serve` stopped with an error, and the exit code for it.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot use data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data dir {0} is in use by another outflow process")]
    DataDirLocked(PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("REST server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("cannot use the REST TLS certificate ({what}): {message}")]
    Tls { what: String, message: String },
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Connectors(#[from] connectors::RuntimeError),
}

impl ServeError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            _ => 1,
        }
    }
}

fn main() -> ExitCode {
    outflow::allocator::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            let _ = writeln_stdout(&format!(
                "outflow {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("OUTFLOW_COMMIT")
            ));
            ExitCode::SUCCESS
        }
        Command::Validate { file, config } => offline(|| validate_file(&file, config.as_deref())),
        Command::Connectors {
            action: ConnectorsCommand::Create { file, config },
        } => offline(|| create_from_file(&file, config.as_deref())),
        Command::Migrate {
            from,
            connector,
            config,
            offsets,
            to,
            name,
        } => offline(|| {
            let source = match (from, connector, config, offsets) {
                (Some(url), Some(connector), _, _) => {
                    outflow::migrate::MigrationSource::Connect { url, connector }
                }
                (_, _, Some(config), Some(offsets)) => {
                    outflow::migrate::MigrationSource::Files { config, offsets }
                }
                _ => {
                    return Err(OfflineError::Failed(
                        "give --from URL --connector NAME, or --config FILE --offsets FILE".into(),
                    ));
                }
            };
            migrate(&source, &to, name.as_deref())
        }),
        Command::Serve { config } => {
            init_tracing();
            outflow::panics::install_hook();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the async runtime");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "outflow serve stopped");
                    let _ = writeln_stderr(&format!("error: {e}"));
                    ExitCode::from(e.exit_code())
                }
            }
        }
    }
}

/// Why an offline command failed; the exit code says which way.
#[derive(Debug, thiserror::Error)]
enum OfflineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Failed(String),
}

/// Runs an offline command: prints its error and maps it to the exit code (2 for bad
/// worker config, 1 otherwise).
fn offline(command: impl FnOnce() -> Result<(), OfflineError>) -> ExitCode {
    match command() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln_stderr(&format!("error: {e}"));
            ExitCode::from(match e {
                OfflineError::Config(_) => 2,
                OfflineError::Failed(_) => 1,
            })
        }
    }
}

fn load_connector_file(
    file: &std::path::Path,
) -> Result<(String, std::collections::BTreeMap<String, String>), OfflineError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| OfflineError::Failed(format!("cannot read {}: {e}", file.display())))?;
    connectors::parse_connector_json(&text)
        .map_err(|e| OfflineError::Failed(format!("{}: {e}", file.display())))
}

fn validate_file(
    file: &std::path::Path,
    config_path: Option<&std::path::Path>,
) -> Result<(), OfflineError> {
    let worker = RawWorkerConfig::load(config_path, std::env::vars())?.validate()?;
    let (_, config) = load_connector_file(file)?;
    let class = config
        .get("connector.class")
        .cloned()
        .unwrap_or_else(|| connectors::POSTGRES_CLASS.to_owned());
    let report = connectors::validation_report(&worker, &class, &config);
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    let _ = writeln_stdout(&text);
    if report["error_count"].as_u64() == Some(0) {
        Ok(())
    } else {
        Err(OfflineError::Failed(format!(
            "{} is not valid (see configs[].value.errors)",
            file.display()
        )))
    }
}

fn create_from_file(
    file: &std::path::Path,
    config_path: Option<&std::path::Path>,
) -> Result<(), OfflineError> {
    let worker = RawWorkerConfig::load(config_path, std::env::vars())?.validate()?;
    let (name, config) = load_connector_file(file)?;
    connectors::check(&worker, &name, &config).map_err(|e| OfflineError::Failed(e.to_string()))?;
    let data_dir = worker.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        OfflineError::Failed(format!("cannot use data dir {}: {e}", data_dir.display()))
    })?;
    let lock_path = data_dir.join(".lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| OfflineError::Failed(format!("cannot open {}: {e}", lock_path.display())))?;
    if lock.try_lock().is_err() {
        return Err(OfflineError::Failed(format!(
            "a running outflow holds {}; POST the file to http://{}/connectors instead",
            data_dir.display(),
            worker.rest_listen
        )));
    }
    let store =
        state::StateStore::open(&data_dir).map_err(|e| OfflineError::Failed(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OfflineError::Failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let existing = store
            .connectors()
            .await
            .map_err(|e| OfflineError::Failed(e.to_string()))?;
        if existing.iter().any(|c| c.name == name) {
            return Err(OfflineError::Failed(format!(
                "Connector {name} already exists"
            )));
        }
        store
            .put_connector(&name, &config, state::TargetState::Running)
            .await
            .map_err(|e| OfflineError::Failed(e.to_string()))
    })?;
    let _ = writeln_stdout(&format!(
        "connector {name} stored in {}; it starts with `outflow serve`",
        data_dir.display()
    ));
    drop(lock);
    Ok(())
}

fn migrate(
    source: &outflow::migrate::MigrationSource,
    to: &str,
    name: Option<&str>,
) -> Result<(), OfflineError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OfflineError::Failed(format!("cannot start the async runtime: {e}")))?;
    let migrated = runtime
        .block_on(outflow::migrate::migrate(source, to, name))
        .map_err(|e| OfflineError::Failed(e.to_string()))?;
    for change in &migrated.changes {
        let _ = writeln_stdout(&format!("config: {change}"));
    }
    let stopped = match source {
        outflow::migrate::MigrationSource::Connect { url, connector } => format!(
            "; Debezium's {connector} on {url} is STOPPED: delete it there once outflow runs as you want (deleting it keeps the slot)"
        ),
        outflow::migrate::MigrationSource::Files { .. } => String::new(),
    };
    let _ = writeln_stdout(&format!(
        "connector {} runs on {to} from Debezium's offset {}{stopped}",
        migrated.name, migrated.offset
    ));
    Ok(())
}

fn writeln_stdout(line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stdout(), "{line}")
}

fn writeln_stderr(line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stderr(), "{line}")
}

/// Logs to stderr: human-readable (colours on a terminal only), or one JSON object per
/// line with `OUTFLOW_LOG_FORMAT=json`. Level from `OUTFLOW_LOG`, else `RUST_LOG`, else
/// info.
fn init_tracing() {
    use std::io::IsTerminal as _;
    let filter = EnvFilter::try_from_env("OUTFLOW_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("OUTFLOW_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// The worker's secret values: REST credentials and secret `kafka.*` settings.
fn worker_secrets(config: &WorkerConfig) -> Vec<String> {
    let mut secrets: Vec<String> = config
        .kafka
        .iter()
        .filter(|(key, _)| outflow_core::config::is_secret(key))
        .map(|(_, value)| value.clone())
        .collect();
    match &config.rest_auth {
        outflow::config::RestAuth::None => {}
        outflow::config::RestAuth::Basic { password, .. } => {
            secrets.push(password.expose().to_owned());
        }
        outflow::config::RestAuth::Bearer { token } => secrets.push(token.expose().to_owned()),
    }
    secrets
}

async fn serve(config_path: Option<PathBuf>) -> Result<(), ServeError> {
    let config: WorkerConfig =
        RawWorkerConfig::load(config_path.as_deref(), std::env::vars())?.validate()?;
    outflow::panics::register_secrets(worker_secrets(&config));
    tracing::info!(
        sink = ?config.sink,
        lake_path = %config.lake_path,
        lake_format = ?config.lake_format,
        converter = ?config.converter,
        schema_registry = config.schema_registry_url.is_some(),
        kafka_settings = config.kafka.len(),
        "starting outflow"
    );

    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| ServeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let lock_path = data_dir.join(".lock");
    let lock = std::fs::File::create(&lock_path).map_err(|source| ServeError::DataDir {
        path: lock_path.clone(),
        source,
    })?;
    if lock.try_lock().is_err() {
        return Err(ServeError::DataDirLocked(data_dir));
    }
    let state_store = state::StateStore::open(&data_dir)?;
    tracing::info!(path = %state_store.path().display(), "state store open");

    let listener = tokio::net::TcpListener::bind(config.rest_listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.rest_listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    tracing::info!(rest = %addr, data_dir = %data_dir.display(), "outflow is ready");

    let runtime =
        connectors::ConnectorRuntime::start(state_store, config.clone(), addr.to_string()).await?;
    let state = Arc::new(rest::RestState {
        auth: config.rest_auth.clone(),
        kafka_cluster_id: None,
        runtime: Arc::clone(&runtime),
    });
    match &config.rest_tls {
        None => axum::serve(listener, rest::router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(ServeError::Serve)?,
        Some(tls) => {
            let acceptor = rest::tls_acceptor(tls)
                .map_err(|(what, message)| ServeError::Tls { what, message })?;
            rest::serve_tls(listener, acceptor, rest::router(state), shutdown_signal()).await;
        }
    }
    // Connectors flush and commit before the process exits.
    runtime.shutdown().await;
    tracing::info!("outflow stopped");
    drop(lock);
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops outflow");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}
