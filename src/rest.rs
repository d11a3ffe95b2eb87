//! The Kafka Connect-compatible REST API (docs/design.md §7).
//!
//! Responses use Kafka Connect's JSON shapes and status codes; errors are always
//! `{"error_code": <status>, "message": "..."}`, also for unknown paths (404) and wrong
//! methods (405). Authentication, when configured, wraps every route.

use std::sync::Arc;

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::config::RestAuth;
use crate::connectors::{ConnectorRuntime, RuntimeError};
use crate::state::TargetState;

/// Shared state of the REST handlers.
#[derive(Debug)]
pub struct RestState {
    /// Authentication to enforce.
    pub auth: RestAuth,
    /// Kafka cluster id, when a Kafka sink is configured and reachable.
    pub kafka_cluster_id: Option<String>,
    /// The worker's connectors.
    pub runtime: Arc<ConnectorRuntime>,
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let status = match &e {
            RuntimeError::Invalid { .. } => StatusCode::BAD_REQUEST,
            RuntimeError::Exists(_) => StatusCode::CONFLICT,
            RuntimeError::NotFound(_) => StatusCode::NOT_FOUND,
            RuntimeError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "state store failure");
        }
        Self::new(status, e.to_string())
    }
}

/// Kafka Connect accepts config values of any JSON type and keeps them as strings.
fn string_map(value: &Value, what: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{what} must be a JSON object"),
        ));
    };
    Ok(crate::connectors::connect_strings(object))
}

/// Largest request body accepted (a connector config is a few KiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The body, or a Kafka Connect-shaped error (413 when it is over [`MAX_BODY_BYTES`]).
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::new(e.status(), format!("Request body rejected: {e}")))
}

fn parse_json(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body_bytes(body)?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Request body is not valid JSON: {e}"),
        )
    })
}

async fn create_connector(
    State(state): State<Arc<RestState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request = connector_request(&body_bytes(body)?)?;
    let info = state
        .runtime
        .create(
            &request.name,
            request.config,
            request.initial_state,
            request.offsets.as_ref(),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(info)).into_response())
}

/// The body of `POST /connectors`, read.
#[derive(Debug)]
pub struct ConnectorRequest {
    /// The connector's name (also added to `config` as `name`).
    pub name: String,
    /// Its config, values of any JSON type kept as strings.
    pub config: BTreeMap<String, String>,
    /// Kafka Connect's `initial_state` (KIP-980): `RUNNING` (default), `PAUSED` or
    /// `STOPPED`.
    pub initial_state: TargetState,
    /// outflow's extension: where to start, as `GET /connectors/{name}/offsets` answers
    /// it here or on a Kafka Connect worker (`{"offsets": [{"partition", "offset"}]}`);
    /// how a connector moves from Debezium without a new snapshot.
    pub offsets: Option<Value>,
}

/// Reads the body of `POST /connectors`: `{"name": …, "config": {…}}` with optional
/// `initial_state` and `offsets`. Errors are the 400s the API answers. Pure; the
/// `rest_body` fuzz target runs it over arbitrary bytes.
pub fn connector_request(body: &[u8]) -> Result<ConnectorRequest, ApiError> {
    let body: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Request body is not valid JSON: {e}"),
        )
    })?;
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Connector configuration is invalid: name: required",
        ));
    };
    let mut config = string_map(
        body.get("config").unwrap_or(&Value::Null),
        "Connector config",
    )?;
    config.insert("name".into(), name.to_owned());
    let initial_state = match body.get("initial_state") {
        None | Some(Value::Null) => TargetState::Running,
        Some(state) => state.as_str().and_then(TargetState::parse).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("initial_state: {state} is not one of RUNNING, PAUSED, STOPPED"),
            )
        })?,
    };
    let offsets = body.get("offsets").filter(|o| !o.is_null()).cloned();
    Ok(ConnectorRequest {
        name: name.to_owned(),
        config,
        initial_state,
        offsets,
    })
}

/// The `expand` values of a query string: `?expand=status&expand=info` (Kafka Connect's
/// form) or `?expand=status,info`.
fn expand_values(query: Option<&str>) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("expand="))
        .flat_map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect()
}

async fn list_connectors(
    State(state): State<Arc<RestState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let names = state.runtime.names().await;
    let expand = expand_values(query.as_deref());
    if expand.is_empty() {
        return Ok(axum::Json(names).into_response());
    }
    let mut out = serde_json::Map::new();
    for name in names {
        let mut entry = serde_json::Map::new();
        if expand.iter().any(|e| e == "status") {
            entry.insert("status".into(), state.runtime.status(&name).await?);
        }
        if expand.iter().any(|e| e == "info") {
            entry.insert("info".into(), state.runtime.info(&name).await?);
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(axum::Json(Value::Object(out)).into_response())
}

async fn connector_info(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.runtime.info(&name).await?).into_response())
}

async fn connector_config(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.runtime.config(&name).await?).into_response())
}

async fn put_connector_config(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut config = string_map(&parse_json(body)?, "Connector config")?;
    config.insert("name".into(), name.clone());
    let (created, info) = state.runtime.put_config(&name, config).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(info)).into_response())
}

async fn connector_tasks(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.runtime.tasks(&name).await?).into_response())
}

async fn connector_status(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.runtime.status(&name).await?).into_response())
}

async fn target(state: &RestState, name: &str, target: TargetState) -> Result<Response, ApiError> {
    state.runtime.set_target(name, target).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn pause_connector(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    target(&state, &name, TargetState::Paused).await
}

async fn resume_connector(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    target(&state, &name, TargetState::Running).await
}

async fn stop_connector(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    target(&state, &name, TargetState::Stopped).await
}

async fn restart_connector(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.runtime.restart(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_connector(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.runtime.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connector_offsets(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.runtime.offsets(&name).await?).into_response())
}

async fn reset_connector_offsets(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.runtime.reset_offsets(&name).await?).into_response())
}

async fn validate_config(
    State(state): State<Arc<RestState>>,
    Path(class): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let config = string_map(&parse_json(body)?, "Connector config")?;
    if crate::sources::canonical_class(&class).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "Failed to find any class that implements Connector and which name matches {class}; available: {}",
                crate::sources::class_names().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let report = crate::connectors::validation_report(state.runtime.worker(), &class, &config);
    Ok(axum::Json(report).into_response())
}

/// `schemas/openapi.yaml`, compiled in.
pub const OPENAPI: &str = include_str!("../schemas/openapi.yaml");

async fn openapi() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        )],
        OPENAPI,
    )
}

async fn metrics(State(state): State<Arc<RestState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.runtime.metrics_text().await,
    )
}

async fn alter_connector_offsets(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = parse_json(body)?;
    Ok(axum::Json(state.runtime.alter_offsets(&name, &body).await?).into_response())
}

async fn connector_topics(
    State(state): State<Arc<RestState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.runtime.topics(&name).await?).into_response())
}

async fn connector_plugins() -> impl IntoResponse {
    let plugins: Vec<Value> = crate::sources::class_names()
        .map(
            |class| json!({"class": class, "type": "source", "version": env!("CARGO_PKG_VERSION")}),
        )
        .collect();
    axum::Json(Value::Array(plugins))
}

/// An API error in Kafka Connect's shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error_code": self.status.as_u16(), "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

/// Builds the router.
pub fn router(state: Arc<RestState>) -> Router {
    Router::new()
        .route("/", get(server_info))
        .route("/health", get(health))
        .route("/connectors", get(list_connectors).post(create_connector))
        .route(
            "/connectors/{name}",
            get(connector_info).delete(delete_connector),
        )
        .route(
            "/connectors/{name}/config",
            get(connector_config).put(put_connector_config),
        )
        .route("/connectors/{name}/tasks", get(connector_tasks))
        .route("/connectors/{name}/status", get(connector_status))
        .route("/connectors/{name}/pause", put(pause_connector))
        .route("/connectors/{name}/resume", put(resume_connector))
        .route("/connectors/{name}/stop", put(stop_connector))
        .route("/connectors/{name}/restart", post(restart_connector))
        .route(
            "/connectors/{name}/offsets",
            get(connector_offsets)
                .delete(reset_connector_offsets)
                .patch(alter_connector_offsets),
        )
        .route("/connectors/{name}/topics", get(connector_topics))
        .route("/connector-plugins", get(connector_plugins))
        .route("/metrics", get(metrics))
        .route("/openapi.yaml", get(openapi))
        .route(
            "/connector-plugins/{class}/config/validate",
            put(validate_config),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "HTTP 404 Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTP 405 Method Not Allowed",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ))
        .with_state(state)
}

async fn server_info(State(state): State<Arc<RestState>>) -> impl IntoResponse {
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("OUTFLOW_COMMIT"),
        "kafka_cluster_id": state.kafka_cluster_id,
    }))
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({
        "status": "healthy",
        "message": "Worker has completed startup and is ready to handle requests.",
    }))
}

async fn authenticate(
    State(state): State<Arc<RestState>>,
    request: Request,
    next: Next,
) -> Response {
    let expected = match &state.auth {
        RestAuth::None => return next.run(request).await,
        RestAuth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
        RestAuth::Bearer { token } => format!("Bearer {}", token.expose()),
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if given.is_some_and(|g| constant_time_eq(g, expected.as_bytes())) {
        return next.run(request).await;
    }
    let scheme = if matches!(state.auth, RestAuth::Basic { .. }) {
        "Basic"
    } else {
        "Bearer"
    };
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "authentication required").into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("{scheme} realm=\"outflow\"")) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Compares without an early exit, so timing does not reveal the matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The TLS acceptor for `rest.tls.*`: the PEM certificate chain and PKCS#8 key, read now.
/// Errors name the file and say what is wrong with it.
pub fn tls_acceptor(
    tls: &crate::config::RestTls,
) -> Result<tokio_native_tls::TlsAcceptor, (String, String)> {
    let read = |path: &std::path::Path, key: &str| {
        std::fs::read(path).map_err(|e| (format!("{key} = {}", path.display()), e.to_string()))
    };
    let cert = read(&tls.cert, "rest.tls.cert")?;
    let key = read(&tls.key, "rest.tls.key")?;
    let identity = native_tls::Identity::from_pkcs8(&cert, &key).map_err(|e| {
        (
            "rest.tls.cert / rest.tls.key".to_owned(),
            format!("{e} (expected a PEM certificate and an unencrypted PEM PKCS#8 key)"),
        )
    })?;
    let acceptor = native_tls::TlsAcceptor::new(identity)
        .map_err(|e| ("rest.tls.cert / rest.tls.key".to_owned(), e.to_string()))?;
    Ok(tokio_native_tls::TlsAcceptor::from(acceptor))
}

/// Serves `app` over HTTPS until `shutdown` resolves: each accepted connection does its
/// TLS handshake (10 s at most) and is then served (HTTP/1.1 or HTTP/2) on its own task,
/// so a slow or failed handshake never holds up the others. Handshake failures are
/// logged at debug level (scanners and plain-HTTP clients make them routinely).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_native_tls::TlsAcceptor,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    tracing::warn!(error = %e, "REST accept failed");
                    continue;
                }
            },
        };
        let (acceptor, service) = (acceptor.clone(), service.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "REST TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "REST TLS handshake timed out");
                    return;
                }
            };
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "REST connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route the router serves, as the OpenAPI document spells it.
    const ROUTES: &[&str] = &[
        "/",
        "/health",
        "/metrics",
        "/openapi.yaml",
        "/connectors",
        "/connectors/{name}",
        "/connectors/{name}/config",
        "/connectors/{name}/status",
        "/connectors/{name}/tasks",
        "/connectors/{name}/topics",
        "/connectors/{name}/pause",
        "/connectors/{name}/resume",
        "/connectors/{name}/stop",
        "/connectors/{name}/restart",
        "/connectors/{name}/offsets",
        "/connector-plugins",
        "/connector-plugins/{class}/config/validate",
    ];

    #[test]
    fn the_openapi_document_lists_every_route() {
        let documented: Vec<&str> = OPENAPI
            .lines()
            .filter_map(|l| l.strip_prefix("  /").map(|p| p.trim_end_matches(':')))
            .collect();
        let mut expected: Vec<String> = ROUTES.iter().map(|r| r[1..].to_owned()).collect();
        let mut found: Vec<String> = documented.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        found.sort();
        // "/" is documented as "  /:" which strips to "".
        assert_eq!(found, expected);
    }
}
