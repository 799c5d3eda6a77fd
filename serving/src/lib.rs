//! The read API (`aperture serve`): home feeds and profiles, served from the state the stream
//! jobs precomputed in Redis.
//!
//! Serving reads Redis only, through the keyspace in [`aperture_schema::keys`]; it never imports
//! `stream-jobs`. Per-user reads take the viewer from the `sub` of a bearer JWT ([`auth`]).
//! Lists page with opaque cursors ([`cursor`]); errors are `{"error": {"code", "message",
//! "field"?}}` ([`error`]); the OpenAPI description is served at `/openapi.json`.
//!
//! [`app`] builds the router (tested in-process on `127.0.0.1:0`); [`serve`] is the process.

pub mod auth;
pub mod cursor;
pub mod error;
pub mod feed;
pub mod posts;
pub mod store;
pub mod users;

use std::collections::HashMap;

use anyhow::Context;
use aperture_schema::Config;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::auth::{Tokens, Viewer};
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::feed::{DEFAULT_LIMIT, FeedPage, MAX_LIMIT};
use crate::store::Store;
use crate::users::Profile;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub tokens: Tokens,
}

impl FromRef<AppState> for Tokens {
    fn from_ref(state: &AppState) -> Tokens {
        state.tokens.clone()
    }
}

impl AppState {
    /// Connects to Redis and sets up token verification from `config`.
    pub async fn new(config: &Config) -> anyhow::Result<AppState> {
        let store = Store::connect(
            &config.redis.url,
            config.keyspace(),
            config.serving.counts_ttl,
        )
        .await
        .with_context(|| format!("while connecting to Redis at {}", config.redis.url))?;
        Ok(AppState {
            store,
            tokens: Tokens::new(&config.serving.jwt_secret),
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aperture read API",
        description = "Home feeds and profiles, served from precomputed state."
    ),
    paths(get_feed, get_user, healthz),
    components(schemas(
        FeedPage,
        posts::Source,
        posts::PostView,
        Profile,
        users::Relationship,
        error::ErrorResponse,
        error::ErrorBody
    )),
    modifiers(&BearerAuth)
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The read API's router.
pub fn app(state: AppState, request_timeout: std::time::Duration) -> Router {
    Router::new()
        .route("/v1/feed", get(get_feed))
        .route("/v1/users/{id}", get(get_user))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Runs the read API until `shutdown` is cancelled.
pub async fn serve(config: &Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let state = AppState::new(config).await?;
    let listener = tokio::net::TcpListener::bind(config.serving.listen)
        .await
        .with_context(|| format!("while binding the read API to {}", config.serving.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "read API up");
    axum::serve(listener, app(state, config.serving.request_timeout))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("while serving the read API")
}

/// `limit` as a page size: 1 to 100, default 20.
fn page_limit(params: &HashMap<String, String>) -> Result<usize, ApiError> {
    let Some(text) = params.get("limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(
            "limit",
            format!("limit must be an integer from 1 to {MAX_LIMIT}, got {text:?}"),
        )),
    }
}

/// The viewer's home feed, newest first.
#[utoipa::path(
    get,
    path = "/v1/feed",
    params(
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<usize>, Query, description = "items per page, 1 to 100, default 20")
    ),
    responses(
        (status = 200, description = "A page of the feed", body = FeedPage),
        (status = 400, description = "A bad cursor or limit", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse),
        (status = 503, description = "State store unavailable", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_feed(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<FeedPage>, ApiError> {
    let limit = page_limit(&params)?;
    let cursor = params
        .get("cursor")
        .map(|c| Cursor::decode(c))
        .transpose()?;
    Ok(Json(feed::page(&state.store, viewer, cursor, limit).await?))
}

/// A user's profile, as the viewer may see it.
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    params(("id" = u64, Path, description = "user id")),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 400, description = "The id is not a user id", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse),
        (status = 404, description = "No such user (or they block the viewer)", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_user(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
) -> Result<Json<Profile>, ApiError> {
    let user = match id.parse::<u64>() {
        Ok(u) if (1..=aperture_schema::MAX_ID).contains(&u) => u,
        _ => {
            return Err(ApiError::bad_request(
                "id",
                format!("id must be a user id (an integer from 1 to 2^53-1), got {id:?}"),
            ));
        }
    };
    users::profile(&state.store, viewer, user)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("there is no user {user}")))
}

/// Healthy when Redis answers.
#[utoipa::path(
    get,
    path = "/healthz",
    responses((status = 200, description = "Redis answers"), (status = 503, description = "Redis does not answer"))
)]
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(error) => {
            tracing::warn!(%error, "health check: redis unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "redis does not answer"})),
            )
        }
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
