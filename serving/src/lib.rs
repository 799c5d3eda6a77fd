//! The read API (`aperture serve`): home feeds (chronological or ranked), Explore, Reels,
//! profiles, posts with their engagement, trending hashtags, notifications and story trays,
//! served from the state the stream jobs precomputed in Redis.
//!
//! Serving reads Redis only, through the keyspace in [`aperture_schema::keys`], and scores with
//! the models of `aperture-ranking` ([`ranked`]); it writes nothing the jobs derive (only
//! ranked sessions and read markers). Per-user reads take the viewer from the `sub` of a bearer JWT ([`auth`]).
//! Lists page with opaque cursors ([`cursor`]); errors are `{"error": {"code", "message",
//! "field"?}}` ([`error`]); the OpenAPI description is served at `/openapi.json`.
//!
//! [`app`] builds the router (tested in-process on `127.0.0.1:0`); [`serve`] is the process.

pub mod auth;
pub mod cursor;
pub mod dashboard;
pub mod detail;
pub mod error;
pub mod feed;
pub mod insights;
pub mod notifications;
pub mod posts;
pub mod ranked;
pub mod store;
pub mod stories;
pub mod trending;
pub mod users;

use std::collections::HashMap;

use anyhow::Context;
use aperture_schema::Config;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::auth::{Tokens, Viewer};
use crate::cursor::{Cursor, KeyCursor};
use crate::error::ApiError;
use crate::feed::{DEFAULT_LIMIT, FeedPage, MAX_LIMIT};
use crate::store::Store;
use crate::users::Profile;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub tokens: Tokens,
    pub settings: Settings,
    pub trending: std::sync::Arc<trending::TrendingCache>,
    pub ranker: std::sync::Arc<ranked::Ranker>,
}

/// The configuration the handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Partitions of the events topic (where the trending job's watermarks are).
    pub partitions: u32,
    /// `trending.min-accounts`.
    pub trend_min_accounts: usize,
    /// `notifications.latest-actors`.
    pub latest_actors: usize,
    /// `serving.insights-min-accounts`.
    pub insights_min_accounts: u64,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            partitions: config.kafka.partitions,
            trend_min_accounts: config.trending.min_accounts,
            latest_actors: config.notifications.latest_actors,
            insights_min_accounts: config.serving.insights_min_accounts,
        }
    }
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
            settings: Settings::from_config(config),
            trending: Default::default(),
            ranker: std::sync::Arc::new(ranked::Ranker::new(config)),
        })
    }

    /// Starts looking for newer ranking models every `ranking.serving.reload-every`, until
    /// `shutdown`.
    pub fn spawn_model_reloader(
        &self,
        config: &Config,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        self.ranker
            .models
            .clone()
            .spawn_reloader(config.ranking.serving.reload_every, shutdown)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aperture read API",
        description = "Home feeds (chronological or ranked), Explore, Reels, profiles, posts, trending hashtags, notifications and stories, served from precomputed state."
    ),
    paths(
        get_feed,
        get_explore,
        get_reels,
        get_user,
        get_post,
        get_trending,
        get_notifications,
        get_unread,
        post_read,
        get_tray,
        get_story_viewers,
        get_insights,
        get_post_insights,
        healthz
    ),
    components(schemas(
        FeedPage,
        ranked::RankedPage,
        ranked::Breakdown,
        ranked::sources::Origin,
        posts::Source,
        posts::PostView,
        Profile,
        users::Relationship,
        detail::PostDetail,
        detail::PublicCounts,
        detail::Insights,
        trending::Window,
        trending::Trend,
        trending::TrendingPage,
        notifications::Kind,
        notifications::Actor,
        notifications::Notification,
        notifications::NotificationPage,
        notifications::Unread,
        stories::StoryView,
        stories::TrayItem,
        stories::Tray,
        stories::StoryViewer,
        stories::ViewerPage,
        insights::AccountInsights,
        insights::Counts,
        insights::Estimate,
        insights::SurfaceViews,
        insights::Figures,
        insights::Day,
        insights::Comparison,
        insights::PostFigures,
        insights::SortBy,
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
        .route("/v1/explore", get(get_explore))
        .route("/v1/reels", get(get_reels))
        .route("/v1/users/{id}", get(get_user))
        .route("/v1/posts/{id}", get(get_post))
        .route("/v1/trending", get(get_trending))
        .route("/v1/notifications", get(get_notifications))
        .route("/v1/notifications/unread", get(get_unread))
        .route("/v1/notifications/read", post(post_read))
        .route("/v1/stories/tray", get(get_tray))
        .route("/v1/stories/{id}/viewers", get(get_story_viewers))
        .route("/v1/insights", get(get_insights))
        .route("/v1/insights/posts/{id}", get(get_post_insights))
        .route(
            "/login",
            get(dashboard::get_login).post(dashboard::post_login),
        )
        .route("/logout", post(dashboard::post_logout))
        .route("/dashboard", get(dashboard::get_dashboard))
        .route("/dashboard/daily.csv", get(dashboard::get_csv))
        .route("/dashboard/posts.csv", get(dashboard::get_csv))
        .route("/static/{*path}", get(dashboard::get_static))
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
    state.spawn_model_reloader(config, shutdown.clone());
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

/// The viewer's home feed: newest first, or ranked.
///
/// `order=ranked` re-orders the newest items of the feed by the ranking model (each item the
/// chronological feed holds, once); past them the pages go on newest first.
#[utoipa::path(
    get,
    path = "/v1/feed",
    params(
        ("order" = Option<String>, Query, description = "`chronological` (default) or `ranked`"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page, with the same order"),
        ("limit" = Option<usize>, Query, description = "items per page, 1 to 100, default 20")
    ),
    responses(
        (status = 200, description = "A page of the feed", body = FeedPage),
        (status = 400, description = "A bad order, cursor or limit", body = error::ErrorResponse),
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
    let ranked = match params.get("order").map(String::as_str) {
        None | Some("chronological") => false,
        Some("ranked") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "order",
                format!("order must be chronological or ranked, got {other:?}"),
            ));
        }
    };
    if ranked {
        let cursor = params
            .get("cursor")
            .map(|c| ranked::FeedCursor::decode(c))
            .transpose()?;
        let page = state
            .ranker
            .feed(&state.store, viewer, cursor, limit, now_ms())
            .await?;
        return Ok(Json(page));
    }
    let cursor = params
        .get("cursor")
        .map(|c| Cursor::decode(c))
        .transpose()?;
    Ok(Json(feed::page(&state.store, viewer, cursor, limit).await?))
}

async fn ranked_page(
    state: &AppState,
    viewer: u64,
    surface: ranked::Ranked,
    params: &HashMap<String, String>,
) -> Result<Json<ranked::RankedPage>, ApiError> {
    let limit = page_limit(params)?;
    let cursor = params
        .get("cursor")
        .map(|c| ranked::RankCursor::decode(c, surface))
        .transpose()?;
    let page = state
        .ranker
        .page(
            &state.store,
            &state.trending,
            viewer,
            surface,
            cursor,
            limit,
            now_ms(),
        )
        .await?;
    Ok(Json(page))
}

/// Explore: posts from accounts the viewer does not follow, ranked for them.
///
/// Candidates from co-engagement neighbours, trending hashtags, first-hour velocity and
/// popularity; never the viewer's own posts, private accounts, accounts blocked either way,
/// posts they hid or reported or have seen; at most `ranking.serving.author-cap` posts of one
/// author in any `page-window` consecutive items. Pages of one session (its cursors) never
/// repeat a post.
#[utoipa::path(
    get,
    path = "/v1/explore",
    params(
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<usize>, Query, description = "items per page, 1 to 100, default 20")
    ),
    responses(
        (status = 200, description = "A page of Explore", body = ranked::RankedPage),
        (status = 400, description = "A bad cursor or limit", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse),
        (status = 503, description = "State store unavailable", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_explore(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ranked::RankedPage>, ApiError> {
    ranked_page(&state, viewer, ranked::Ranked::Explore, &params).await
}

/// Reels: reels only, ranked for the viewer with expected watch time, from anyone they may
/// see (private accounts' only when they follow them), under Explore's other rules.
#[utoipa::path(
    get,
    path = "/v1/reels",
    params(
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<usize>, Query, description = "items per page, 1 to 100, default 20")
    ),
    responses(
        (status = 200, description = "A page of Reels", body = ranked::RankedPage),
        (status = 400, description = "A bad cursor or limit", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse),
        (status = 503, description = "State store unavailable", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_reels(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ranked::RankedPage>, ApiError> {
    ranked_page(&state, viewer, ranked::Ranked::Reels, &params).await
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
    let user = path_id(&id, "user")?;
    users::profile(&state.store, viewer, user)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("there is no user {user}")))
}

/// A path id: an integer from 1 to 2^53−1, or a 400 naming `id`.
fn path_id(text: &str, what: &str) -> Result<u64, ApiError> {
    match text.parse::<u64>() {
        Ok(id) if (1..=aperture_schema::MAX_ID).contains(&id) => Ok(id),
        _ => Err(ApiError::bad_request(
            "id",
            format!("id must be a {what} id (an integer from 1 to 2^53-1), got {text:?}"),
        )),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The signed-in creator's insights over a range of UTC days, against the range before it.
///
/// Always the viewer's own account: there is no author parameter. Views, interactions,
/// follows, unfollows and watch time are exact; reach and accounts engaged are distinct over
/// the whole range, estimated by HyperLogLog (standard error 0.81%). `range=7d|28d|90d` ends
/// yesterday; a custom `from`/`to` may end today, which is then partial and left out of the
/// comparison.
#[utoipa::path(
    get,
    path = "/v1/insights",
    params(
        ("range" = Option<String>, Query, description = "`7d` (default), `28d`, `90d` or `custom`"),
        ("from" = Option<String>, Query, description = "first day of a custom range, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "last day of a custom range, YYYY-MM-DD, not after today"),
        ("sort" = Option<String>, Query, description = "top posts by `views` (default), `reach`, `interactions` or `watch_time`")
    ),
    responses(
        (status = 200, description = "The account's insights", body = insights::AccountInsights),
        (status = 400, description = "A bad range or sort", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse),
        (status = 503, description = "State store unavailable", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_insights(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<insights::AccountInsights>, ApiError> {
    let today = insights::today(now_ms());
    let range = insights::Range::parse(&params, today)?;
    let sort = insights::SortBy::parse(&params)?;
    Ok(Json(
        insights::account(
            &state.store,
            viewer,
            range,
            today,
            sort,
            state.settings.partitions,
            state.settings.insights_min_accounts,
        )
        .await?,
    ))
}

/// One post's insights, for its author only.
#[utoipa::path(
    get,
    path = "/v1/insights/posts/{id}",
    params(("id" = u64, Path, description = "post id")),
    responses(
        (status = 200, description = "The post with its counts and its author's insights", body = detail::PostDetail),
        (status = 400, description = "The id is not a post id", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse),
        (status = 403, description = "The post is another account's", body = error::ErrorResponse),
        (status = 404, description = "No such post, or deleted", body = error::ErrorResponse),
        (status = 503, description = "State store unavailable", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_post_insights(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
) -> Result<Json<detail::PostDetail>, ApiError> {
    let post = path_id(&id, "post")?;
    match detail::post(&state.store, viewer, post).await? {
        Some(d) if d.insights.is_some() => Ok(Json(d)),
        Some(_) => Err(ApiError::Forbidden(format!(
            "post {post} is another account's; insights are its author's only"
        ))),
        None => Err(ApiError::NotFound(format!("no post {post}"))),
    }
}

/// A post with its counts; its author also gets the insights.
#[utoipa::path(
    get,
    path = "/v1/posts/{id}",
    params(("id" = u64, Path, description = "post id")),
    responses(
        (status = 200, description = "The post", body = detail::PostDetail),
        (status = 400, description = "The id is not a post id", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse),
        (status = 404, description = "No such post, deleted, or not visible to the viewer", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_post(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
) -> Result<Json<detail::PostDetail>, ApiError> {
    let post = path_id(&id, "post")?;
    detail::post(&state.store, viewer, post)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("there is no post {post}")))
}

/// Trending hashtags of a window, best first.
#[utoipa::path(
    get,
    path = "/v1/trending",
    params(
        ("window" = Option<String>, Query, description = "`1h` (default), `24h` or `7d`"),
        ("limit" = Option<usize>, Query, description = "tags, 1 to 100, default 20"),
        ("at" = Option<i64>, Query, description = "end of the window (ms); default: the newest post time counted")
    ),
    responses(
        (status = 200, description = "The trending tags", body = trending::TrendingPage),
        (status = 400, description = "A bad window, limit or at", body = error::ErrorResponse)
    )
)]
async fn get_trending(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<trending::TrendingPage>, ApiError> {
    let limit = page_limit(&params)?;
    let window = match params.get("window").map(String::as_str) {
        None => trending::Window::Hour,
        Some(text) => trending::Window::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "window",
                format!("window must be one of 1h, 24h, 7d, got {text:?}"),
            )
        })?,
    };
    let at = params
        .get("at")
        .map(|text| {
            text.parse::<i64>().ok().filter(|&t| t >= 0).ok_or_else(|| {
                ApiError::bad_request(
                    "at",
                    format!("at must be a time in ms since the epoch, got {text:?}"),
                )
            })
        })
        .transpose()?;
    let page = trending::page(
        &state.store,
        &state.trending,
        window,
        limit,
        at,
        state.settings.partitions,
        state.settings.trend_min_accounts,
    )
    .await?;
    Ok(Json(page))
}

/// The viewer's notifications, newest first.
#[utoipa::path(
    get,
    path = "/v1/notifications",
    params(
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<usize>, Query, description = "items per page, 1 to 100, default 20")
    ),
    responses(
        (status = 200, description = "A page of notifications", body = notifications::NotificationPage),
        (status = 400, description = "A bad cursor or limit", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_notifications(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<notifications::NotificationPage>, ApiError> {
    let limit = page_limit(&params)?;
    let cursor = params
        .get("cursor")
        .map(|c| KeyCursor::decode(c))
        .transpose()?;
    let page = notifications::page(
        &state.store,
        viewer,
        cursor,
        limit,
        state.settings.latest_actors,
    )
    .await?;
    Ok(Json(page))
}

/// How many notifications the viewer has not read.
#[utoipa::path(
    get,
    path = "/v1/notifications/unread",
    responses(
        (status = 200, description = "The unread count", body = notifications::Unread),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_unread(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
) -> Result<Json<notifications::Unread>, ApiError> {
    Ok(Json(notifications::unread(&state.store, viewer).await?))
}

/// Marks every notification listed now as read.
#[utoipa::path(
    post,
    path = "/v1/notifications/read",
    responses(
        (status = 204, description = "Marked"),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn post_read(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
) -> Result<StatusCode, ApiError> {
    notifications::mark_read(&state.store, viewer).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The viewer's story tray: authors with unseen stories first, then by newest story.
#[utoipa::path(
    get,
    path = "/v1/stories/tray",
    responses(
        (status = 200, description = "The tray", body = stories::Tray),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_tray(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
) -> Result<Json<stories::Tray>, ApiError> {
    Ok(Json(stories::tray(&state.store, viewer, now_ms()).await?))
}

/// Who saw one of the viewer's live stories, newest first.
#[utoipa::path(
    get,
    path = "/v1/stories/{id}/viewers",
    params(
        ("id" = u64, Path, description = "story id"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<usize>, Query, description = "items per page, 1 to 100, default 20")
    ),
    responses(
        (status = 200, description = "A page of viewers", body = stories::ViewerPage),
        (status = 400, description = "A bad id, cursor or limit", body = error::ErrorResponse),
        (status = 401, description = "Missing or invalid bearer token", body = error::ErrorResponse),
        (status = 403, description = "The story is someone else's", body = error::ErrorResponse),
        (status = 404, description = "No such live story", body = error::ErrorResponse)
    ),
    security(("bearer" = []))
)]
async fn get_story_viewers(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<stories::ViewerPage>, ApiError> {
    let story = path_id(&id, "story")?;
    let limit = page_limit(&params)?;
    let cursor = params
        .get("cursor")
        .map(|c| Cursor::decode(c))
        .transpose()?;
    match stories::viewers(&state.store, viewer, story, cursor, limit, now_ms()).await? {
        Ok(page) => Ok(Json(page)),
        Err(stories::Refusal::NotFound) => Err(ApiError::NotFound(format!(
            "there is no live story {story}"
        ))),
        Err(stories::Refusal::NotTheAuthor) => Err(ApiError::Forbidden(
            "only the author of a story sees who viewed it".into(),
        )),
    }
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
