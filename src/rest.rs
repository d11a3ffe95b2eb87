//! The Kafka Connect-compatible REST API (DESIGN.md §6).
//!
//! Responses use Kafka Connect's JSON shapes and status codes; errors are always
//! `{"error_code": <status>, "message": "..."}`, also for unknown paths (404) and wrong
//! methods (405). Authentication, when configured, wraps every route.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde_json::json;

use crate::config::RestAuth;

/// Shared state of the REST handlers.
#[derive(Debug)]
pub struct RestState {
    /// Authentication to enforce.
    pub auth: RestAuth,
    /// Kafka cluster id, when a Kafka sink is configured and reachable.
    pub kafka_cluster_id: Option<String>,
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
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "HTTP 404 Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTP 405 Method Not Allowed",
            )
        })
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
