//! Explore, Reels and the ranked home feed: candidates, visibility rules, the newest accepted
//! model's scores, re-ranking, and sessions so that paging never repeats an item.
//!
//! # A batch (Explore and Reels)
//!
//! 1. the viewer's own keys, one round trip in their slot ([`state::viewer_keys`]);
//! 2. candidates from the sources ([`sources`]): co-engagement neighbours' posts, trending
//!    hashtags' posts, first-hour velocity and popularity from the pools (Reels: reels only,
//!    and the newest reels so a new one gets seen), taken in turn from each source up to
//!    `ranking.serving.candidates`;
//! 3. every candidate's post and author and the viewer's history posts, read fresh
//!    ([`state::Snapshot`]);
//! 4. the rules: never the viewer's own posts, an account blocked either way, a deleted post,
//!    a post the viewer hid or reported, an author they hid or reported
//!    `ranking.serving.hide-author-after` times or more, a post they have seen, or a post
//!    already in the session; Explore shows no account the viewer follows and no private
//!    account; Reels shows reels only, private accounts' only to their approved followers;
//! 5. features ([`aperture_ranking::features::assemble`], the function training uses),
//!    predictions of the newest accepted model (or, before there is one, per-view rates of
//!    the post's own counters, smoothed: the popularity prior), the weighted score
//!    ([`aperture_ranking::model::score`]);
//! 6. re-ranking with the author cap ([`aperture_ranking::rerank`]), seeded with the
//!    session's earlier items so the cap and the media mix hold across batches.
//!
//! # Sessions
//!
//! A first page starts a session: a LIST of the items served so far, under the viewer's hash
//! tag ([`aperture_schema::keys::Keyspace::rank_session`]), alive for
//! `ranking.serving.session-ttl` after its last page. A cursor names the session and an
//! offset; a page is read from the list, and when the list runs short a new batch (without
//! anything already in it) is appended by a script that checks the length it was computed
//! for, so two concurrent requests of one session cannot interleave batches. Items are
//! checked again when served (deleted since, blocked since, gone private), so a session
//! never shows what the viewer may no longer see. A cursor of an expired session starts a
//! new one.
//!
//! # The ranked feed
//!
//! `GET /v1/feed?order=ranked`: the first [`FEED_WINDOW`] items of the chronological feed,
//! scored for the feed surface (a post the viewer has seen scores `seen-factor` of itself),
//! re-ranked without leaving any out, served from a session; after the window the pages go
//! on chronologically from where the window ended. So the ranked feed holds exactly the
//! chronological feed's items, in another order.

pub mod sources;
pub mod state;

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aperture_ranking::model::{self, Artifact, ModelError};
use aperture_ranking::rerank::{self, Rules, Scored};
use aperture_ranking::topics::Topics;
use aperture_schema::Config;
use aperture_schema::config::{RankServingConfig, ScoreWeights};
use aperture_schema::event::{MediaType, Surface};
use aperture_schema::truth::Probabilities;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::RedisError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::feed::{self, FeedPage};
use crate::posts::{Hydrated, PostView, Source, hydrate};
use crate::store::Store;
use crate::trending::TrendingCache;
use sources::{Found, Origin, PoolCache};
use state::{Snapshot, ViewerKeys};

/// Chronological items the ranked feed re-orders before going on chronologically.
pub const FEED_WINDOW: usize = 200;
/// Items a session holds at most; after that its cursor ends.
pub const SESSION_CAP: usize = 1_000;
/// How long the pools are read again at most once per process.
const POOLS_EVERY: Duration = Duration::from_secs(5);

/// The ranked surfaces, with the code their cursors and session keys carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranked {
    Explore,
    Reels,
    Feed,
}

impl Ranked {
    fn code(self) -> &'static str {
        match self {
            Ranked::Explore => "explore",
            Ranked::Reels => "reels",
            Ranked::Feed => "feed",
        }
    }

    fn surface(self) -> Surface {
        match self {
            Ranked::Explore => Surface::Explore,
            Ranked::Reels => Surface::Reels,
            Ranked::Feed => Surface::Feed,
        }
    }
}

/// How an item's score came about (`ranking.serving.debug`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Breakdown {
    /// The model's version, or `prior` before a model was accepted.
    pub model: String,
    pub p_like: f64,
    pub p_comment: f64,
    pub p_share: f64,
    pub p_save: f64,
    /// P(hide or report), subtracted.
    pub p_negative: f64,
    /// Expected watch time of a video or reel, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_ms: Option<f64>,
    /// The weighted sum of the predictions (with a seen post's factor in the ranked feed).
    pub score: f64,
}

/// A page of Explore or Reels.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RankedPage {
    /// In the order to show; each carries its `origin`.
    pub items: Vec<PostView>,
    /// Pass back as `cursor` for the next page; `null` when there is nothing more to show.
    pub next_cursor: Option<String>,
    /// The model version that scored the batch, `null` for the popularity prior.
    pub model: Option<String>,
}

/// One item of a session, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    post: u64,
    author: u64,
    media: MediaType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    breakdown: Option<Breakdown>,
}

/// The newest accepted model, reloaded while serving.
#[derive(Debug)]
pub struct Models {
    dir: PathBuf,
    current: RwLock<Option<Arc<Artifact>>>,
}

impl Models {
    /// The models of `dir`, the newest accepted one loaded now (none is fine: the popularity
    /// prior scores until one is accepted).
    pub fn new(dir: PathBuf) -> Models {
        let models = Models {
            dir,
            current: RwLock::new(None),
        };
        match models.reload() {
            Ok(Some(version)) => tracing::info!(%version, "ranking model loaded"),
            Ok(None) => tracing::info!(
                dir = %models.dir.display(),
                "no accepted ranking model yet; scoring by the popularity prior"
            ),
            Err(error) => tracing::warn!(%error, "ranking models could not be read"),
        }
        models
    }

    pub fn current(&self) -> Option<Arc<Artifact>> {
        self.current.read().expect("not poisoned").clone()
    }

    /// Loads the newest accepted artifact when it is not the one held; its version when the
    /// model changed.
    pub fn reload(&self) -> Result<Option<String>, ModelError> {
        let Some((_, artifact)) = model::newest_accepted(&self.dir)? else {
            return Ok(None);
        };
        let held = self.current().map(|a| a.version.clone());
        if held.as_deref() == Some(artifact.version.as_str()) {
            return Ok(None);
        }
        let version = artifact.version.clone();
        *self.current.write().expect("not poisoned") = Some(Arc::new(artifact));
        Ok(Some(version))
    }

    /// Looks for a newer model every `every` until `shutdown`.
    pub fn spawn_reloader(
        self: Arc<Self>,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let models = self.clone();
                match tokio::task::spawn_blocking(move || models.reload()).await {
                    Ok(Ok(Some(version))) => tracing::info!(%version, "ranking model reloaded"),
                    Ok(Ok(None)) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "ranking models could not be read"),
                    Err(error) => tracing::warn!(%error, "ranking model reload failed"),
                }
            }
        })
    }
}

/// Smoothing of the popularity prior: per-view rates as if each post had had this many more
/// views with the given rates.
const PRIOR_VIEWS: f64 = 20.0;
const PRIOR_RATES: [f64; 5] = [0.05, 0.005, 0.003, 0.005, 0.002];
const PRIOR_WATCH_MS: f64 = 8_000.0;

/// The popularity prior: the post's own smoothed per-view rates.
fn prior(inputs: &aperture_ranking::features::Inputs) -> Probabilities {
    let views = inputs.views.max(0) as f64;
    let rate =
        |n: i64, k: usize| (n.max(0) as f64 + PRIOR_RATES[k] * PRIOR_VIEWS) / (views + PRIOR_VIEWS);
    Probabilities {
        like: rate(inputs.likes, 0),
        comment: rate(inputs.comments, 1),
        share: rate(inputs.shares, 2),
        save: rate(inputs.saves, 3),
        negative: rate(inputs.negative, 4),
        watch_ms: inputs.media_type.is_video().then(|| {
            (inputs.post_watch_ms.max(0) as f64 + PRIOR_WATCH_MS * 2.0)
                / (inputs.post_watched.max(0) as f64 + 2.0)
        }),
    }
}

/// Explore, Reels and the ranked feed of one process.
#[derive(Debug)]
pub struct Ranker {
    pub models: Arc<Models>,
    pools: PoolCache,
    rules: Rules,
    serving: RankServingConfig,
    weights: ScoreWeights,
    affinity_half_life_ms: f64,
    partitions: u32,
    trend_min_accounts: usize,
    no_topics: Topics,
    sessions: AtomicU64,
    /// Candidates' post and author state, kept for `ranking.serving.state-ttl`.
    state: state::StateCache,
}

static APPEND: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("append.lua")));

/// A ranked list's cursor: URL-safe base64 of `r1:<surface>:<session>:<offset>`, and for the
/// feed `:<the chronological cursor after the window>` when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankCursor {
    surface: &'static str,
    session: String,
    offset: usize,
    then: Option<String>,
}

impl RankCursor {
    fn encode(&self) -> String {
        let mut text = format!("r1:{}:{}:{}", self.surface, self.session, self.offset);
        if let Some(then) = &self.then {
            text.push(':');
            text.push_str(then);
        }
        URL_SAFE_NO_PAD.encode(text)
    }

    /// A cursor of `surface`'s pages, or a 400 naming `cursor`.
    pub fn decode(text: &str, surface: Ranked) -> Result<RankCursor, ApiError> {
        let invalid = || {
            ApiError::bad_request(
                "cursor",
                "cursor is not one this list handed out; pass next_cursor back unchanged",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let mut parts = text.splitn(5, ':');
        let (Some("r1"), Some(code), Some(session), Some(offset)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if code != surface.code()
            || session.is_empty()
            || !session.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(invalid());
        }
        let then = parts.next().map(str::to_owned);
        if then.is_some() && surface != Ranked::Feed {
            return Err(invalid());
        }
        Ok(RankCursor {
            surface: surface.code(),
            session: session.to_owned(),
            offset: offset.parse().map_err(|_| invalid())?,
            then,
        })
    }
}

/// What a ranked feed request names as its position.
#[derive(Debug, Clone)]
pub enum FeedCursor {
    /// Inside the ranked window.
    Ranked(RankCursor),
    /// Past the window: the chronological feed's own cursor.
    Chronological(Cursor),
}

impl FeedCursor {
    pub fn decode(text: &str) -> Result<FeedCursor, ApiError> {
        match RankCursor::decode(text, Ranked::Feed) {
            Ok(c) => Ok(FeedCursor::Ranked(c)),
            Err(e) => Cursor::decode(text)
                .map(FeedCursor::Chronological)
                .map_err(|_| e),
        }
    }
}

impl Ranker {
    pub fn new(config: &Config) -> Ranker {
        Ranker {
            models: Arc::new(Models::new(config.ranking.models_dir.clone())),
            pools: PoolCache::new(POOLS_EVERY),
            rules: Rules::from_config(&config.ranking.serving),
            serving: config.ranking.serving.clone(),
            weights: config.ranking.weights,
            affinity_half_life_ms: config.engagement.affinity_half_life.as_millis() as f64,
            partitions: config.kafka.partitions,
            trend_min_accounts: config.trending.min_accounts,
            no_topics: Topics::default(),
            sessions: AtomicU64::new(0),
            state: state::StateCache::new(config.ranking.serving.state_ttl),
        }
    }

    fn new_session(&self, viewer: u64) -> String {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let h = std::collections::hash_map::RandomState::new().hash_one((viewer, n, nanos));
        format!("{h:016x}")
    }

    fn ttl_ms(&self) -> String {
        self.serving.session_ttl.as_millis().to_string()
    }

    /// A page of Explore or Reels for `viewer` at `at_ms`.
    #[allow(clippy::too_many_arguments)]
    pub async fn page(
        &self,
        store: &Store,
        trending: &TrendingCache,
        viewer: u64,
        surface: Ranked,
        cursor: Option<RankCursor>,
        limit: usize,
        at_ms: i64,
    ) -> Result<RankedPage, RedisError> {
        let (session, offset) = match cursor {
            Some(c) => (c.session, c.offset),
            None => (self.new_session(viewer), 0),
        };
        let key = store.keys().rank_session(viewer, surface.code(), &session);
        let mut items = read_session(store, &key).await?;
        // An expired session starts again from its beginning.
        let offset = if offset > items.len() { 0 } else { offset };
        let keys = state::viewer_keys(store, viewer).await?;
        let model = self.models.current();
        let mut exhausted = false;
        if items.len() < offset + limit && items.len() < SESSION_CAP {
            let want = limit.max(self.serving.page_window);
            let batch = self
                .batch(
                    store,
                    trending,
                    viewer,
                    &keys,
                    surface,
                    &items,
                    want,
                    at_ms,
                    model.as_deref(),
                )
                .await?;
            exhausted = batch.is_empty();
            items = self.append(store, &key, items, batch).await?;
        } else {
            refresh(store, &key, &self.ttl_ms()).await?;
        }
        let end = (offset + limit).min(items.len());
        let shown = self
            .visible(store, viewer, &keys, surface, &items[offset..end])
            .await?;
        let more = end > offset && !(exhausted && end == items.len()) && end < SESSION_CAP;
        Ok(RankedPage {
            items: shown,
            next_cursor: more.then(|| {
                RankCursor {
                    surface: surface.code(),
                    session,
                    offset: end,
                    then: None,
                }
                .encode()
            }),
            model: model.map(|m| m.version.clone()),
        })
    }

    /// Appends `batch` to the session read as `items`; when another request extended it
    /// first, the session as it now stands.
    async fn append(
        &self,
        store: &Store,
        key: &str,
        mut items: Vec<Item>,
        batch: Vec<Item>,
    ) -> Result<Vec<Item>, RedisError> {
        if batch.is_empty() {
            return Ok(items);
        }
        let mut args = vec![items.len().to_string(), self.ttl_ms()];
        args.extend(
            batch
                .iter()
                .map(|i| serde_json::to_string(i).expect("an item is plain data")),
        );
        let length: i64 = store.script(&APPEND, &[key.to_owned()], &args).await?;
        if length < 0 {
            return read_session(store, key).await;
        }
        items.extend(batch);
        Ok(items)
    }

    /// The next `want` items of a session that holds `served`.
    #[allow(clippy::too_many_arguments)]
    async fn batch(
        &self,
        store: &Store,
        trending: &TrendingCache,
        viewer: u64,
        keys: &ViewerKeys,
        surface: Ranked,
        served: &[Item],
        want: usize,
        at_ms: i64,
        model: Option<&Artifact>,
    ) -> Result<Vec<Item>, RedisError> {
        let lists = self.pools.lists(store, self.partitions).await?;
        let co = sources::co_engagement(store, viewer, &keys.engaged).await?;
        let trend =
            sources::trending(store, trending, self.partitions, self.trend_min_accounts).await?;
        let by_source: Vec<&[Found]> = match surface {
            Ranked::Reels => vec![&co, &lists.popular_reels, &lists.fresh_reels, &trend],
            _ => vec![&co, &trend, &lists.velocity, &lists.popular],
        };
        let mut excluded: HashSet<u64> = served.iter().map(|i| i.post).collect();
        excluded.extend(&keys.history);
        excluded.extend(&keys.hidden);
        let explore = surface == Ranked::Explore;
        let author_ok = |a: u64| {
            a == 0
                || (a != viewer
                    && !keys.blocked.contains(&a)
                    && !(explore && keys.following.contains(&a))
                    && keys.negative.get(&a).copied().unwrap_or(0) < self.serving.hide_author_after)
        };
        let found = interleave(&by_source, self.serving.candidates, |f| {
            !excluded.contains(&f.post) && author_ok(f.author)
        });
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let topics = model.map_or(&self.no_topics, |m| &m.topics);
        let posts: Vec<u64> = found.iter().map(|f| f.post).collect();
        let snapshot = Snapshot::read(
            store,
            Some(&self.state),
            viewer,
            keys.clone(),
            &posts,
            topics,
            at_ms,
            self.affinity_half_life_ms,
        )
        .await?;
        let mut scored = Vec::with_capacity(found.len());
        for f in &found {
            let Some(s) = snapshot.posts.get(&f.post).filter(|s| !s.deleted) else {
                continue;
            };
            let author = s.post.author;
            let Some(a) = snapshot.authors.get(&author) else {
                continue;
            };
            let follows = keys.following.contains(&author);
            let allowed = author_ok(author)
                && match surface {
                    Ranked::Reels => {
                        s.post.media_type == MediaType::Reel && (!a.private || follows)
                    }
                    _ => !a.private,
                };
            if !allowed {
                continue;
            }
            let Some(inputs) = snapshot.inputs(f.post, surface.surface(), topics) else {
                continue;
            };
            let (score, breakdown) = self.score(&inputs, model, 1.0);
            scored.push(Scored {
                post: f.post,
                author,
                media_type: s.post.media_type,
                age_ms: inputs.age_ms,
                score,
                extra: (f.origin, breakdown),
            });
        }
        let before = tail(served, self.rules.window);
        Ok(rerank::rerank(scored, &self.rules, true, want, &before)
            .into_iter()
            .map(|s| Item {
                post: s.post,
                author: s.author,
                media: s.media_type,
                origin: Some(s.extra.0),
                source: None,
                breakdown: self.serving.debug.then_some(s.extra.1),
            })
            .collect())
    }

    /// The score of `inputs` (times `factor`) and how it came about.
    fn score(
        &self,
        inputs: &aperture_ranking::features::Inputs,
        model: Option<&Artifact>,
        factor: f64,
    ) -> (f64, Breakdown) {
        let p = model.map_or_else(|| prior(inputs), |m| m.predict(inputs));
        let score = model::score(&p, &self.weights) * factor;
        (
            score,
            Breakdown {
                model: model.map_or_else(|| "prior".to_owned(), |m| m.version.clone()),
                p_like: p.like,
                p_comment: p.comment,
                p_share: p.share,
                p_save: p.save,
                p_negative: p.negative,
                watch_ms: p.watch_ms,
                score,
            },
        )
    }

    /// `items` hydrated, leaving out what the viewer may not see any more.
    async fn visible(
        &self,
        store: &Store,
        viewer: u64,
        keys: &ViewerKeys,
        surface: Ranked,
        items: &[Item],
    ) -> Result<Vec<PostView>, RedisError> {
        let ids: Vec<u64> = items.iter().map(|i| i.post).collect();
        let now = state::posts(store, &ids).await?;
        let mut authors: Vec<u64> = items.iter().map(|i| i.author).collect();
        authors.sort_unstable();
        authors.dedup();
        let private = private_flags(store, &authors).await?;
        let ok: Vec<&Item> = items
            .iter()
            .filter(|i| {
                let shown = now.get(&i.post).is_some_and(|s| !s.deleted)
                    && !keys.blocked.contains(&i.author)
                    && (surface == Ranked::Feed || !keys.hidden.contains(&i.post));
                let private = private.get(&i.author).copied().unwrap_or(false);
                let allowed = match surface {
                    Ranked::Explore => !private,
                    // The feed's own items were read under its own rules.
                    _ => !private || keys.following.contains(&i.author) || i.author == viewer,
                };
                shown && allowed
            })
            .collect();
        let pairs: Vec<(u64, u64)> = ok.iter().map(|i| (i.post, i.author)).collect();
        let hydrated = hydrate(store, &pairs).await?;
        Ok(ok
            .into_iter()
            .filter_map(|i| match hydrated.get(&i.post) {
                Some(Hydrated::Visible(p)) => {
                    let mut p = p.clone();
                    p.origin = i.origin;
                    p.source = i.source;
                    p.breakdown = i.breakdown.clone().map(Box::new);
                    Some(p)
                }
                _ => None,
            })
            .collect())
    }

    /// A page of the ranked home feed.
    pub async fn feed(
        &self,
        store: &Store,
        viewer: u64,
        cursor: Option<FeedCursor>,
        limit: usize,
        at_ms: i64,
    ) -> Result<FeedPage, RedisError> {
        let (session, offset, then) = match cursor {
            Some(FeedCursor::Chronological(c)) => {
                return feed::page(store, viewer, Some(c), limit).await;
            }
            Some(FeedCursor::Ranked(c)) => (c.session, c.offset, c.then),
            None => (self.new_session(viewer), 0, None),
        };
        let key = store
            .keys()
            .rank_session(viewer, Ranked::Feed.code(), &session);
        let mut items = read_session(store, &key).await?;
        let keys = state::viewer_keys(store, viewer).await?;
        let (offset, then) = if items.is_empty() {
            // A new session, or an expired one: rank the top of the feed again.
            let (window, then) = self.feed_window(store, viewer, &keys, at_ms).await?;
            let store_items = window.clone();
            items = self.append(store, &key, Vec::new(), store_items).await?;
            (0, then)
        } else {
            refresh(store, &key, &self.ttl_ms()).await?;
            (offset.min(items.len()), then)
        };
        let end = (offset + limit).min(items.len());
        let shown = self
            .visible(store, viewer, &keys, Ranked::Feed, &items[offset..end])
            .await?;
        let next_cursor = if end < items.len() {
            Some(
                RankCursor {
                    surface: Ranked::Feed.code(),
                    session,
                    offset: end,
                    then,
                }
                .encode(),
            )
        } else {
            then
        };
        Ok(FeedPage {
            items: shown,
            next_cursor,
        })
    }

    /// The top of the chronological feed ranked, and the chronological cursor after it.
    async fn feed_window(
        &self,
        store: &Store,
        viewer: u64,
        keys: &ViewerKeys,
        at_ms: i64,
    ) -> Result<(Vec<Item>, Option<String>), RedisError> {
        let window = feed::page(store, viewer, None, FEED_WINDOW).await?;
        let model = self.models.current();
        let topics = model.as_deref().map_or(&self.no_topics, |m| &m.topics);
        let posts: Vec<u64> = window.items.iter().map(|p| p.post_id).collect();
        let snapshot = Snapshot::read(
            store,
            Some(&self.state),
            viewer,
            keys.clone(),
            &posts,
            topics,
            at_ms,
            self.affinity_half_life_ms,
        )
        .await?;
        let seen: HashSet<u64> = keys.history.iter().copied().collect();
        let mut scored: Vec<Scored<(Option<Breakdown>, Option<Source>)>> = window
            .items
            .iter()
            .map(|p| {
                let media = state::media(&p.media_type).unwrap_or(MediaType::Photo);
                let (score, breakdown) = match snapshot.inputs(p.post_id, Surface::Feed, topics) {
                    Some(inputs) => {
                        let factor = if seen.contains(&p.post_id) {
                            self.serving.seen_factor
                        } else {
                            1.0
                        };
                        let (s, b) = self.score(&inputs, model.as_deref(), factor);
                        (s, Some(b))
                    }
                    // The viewer's own posts: placed by the best score, freshness deciding.
                    None => (f64::NAN, None),
                };
                Scored {
                    post: p.post_id,
                    author: p.author_id,
                    media_type: media,
                    age_ms: (at_ms - p.created_at).max(0),
                    score,
                    extra: (breakdown, p.source),
                }
            })
            .collect();
        let best = scored
            .iter()
            .map(|s| s.score)
            .filter(|s| s.is_finite())
            .fold(0.0, f64::max);
        for s in &mut scored {
            if s.score.is_nan() {
                s.score = best;
            }
        }
        let n = scored.len();
        let items = rerank::rerank(scored, &self.rules, false, n, &[])
            .into_iter()
            .map(|s| Item {
                post: s.post,
                author: s.author,
                media: s.media_type,
                origin: None,
                source: s.extra.1,
                breakdown: if self.serving.debug { s.extra.0 } else { None },
            })
            .collect();
        Ok((items, window.next_cursor))
    }
}

/// Candidates taken in turn from each source, strongest first, each post once, `cap` at
/// most, those `keep` accepts.
fn interleave(sources: &[&[Found]], cap: usize, keep: impl Fn(&Found) -> bool) -> Vec<Found> {
    let mut out = Vec::new();
    let mut taken = HashSet::new();
    let mut at = vec![0usize; sources.len()];
    loop {
        let mut progressed = false;
        for (s, list) in sources.iter().enumerate() {
            while at[s] < list.len() {
                let f = list[at[s]];
                at[s] += 1;
                if keep(&f) && taken.insert(f.post) {
                    out.push(f);
                    progressed = true;
                    break;
                }
            }
            if out.len() >= cap {
                return out;
            }
        }
        if !progressed {
            return out;
        }
    }
}

/// The last `n` items' authors and media types, oldest first.
fn tail(items: &[Item], n: usize) -> Vec<(u64, MediaType)> {
    items[items.len().saturating_sub(n)..]
        .iter()
        .map(|i| (i.author, i.media))
        .collect()
}

async fn read_session(store: &Store, key: &str) -> Result<Vec<Item>, RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("LRANGE").arg(key).arg(0).arg(-1);
    let raw: Vec<String> = store.run(&pipe).await?.take()?;
    // An item this build cannot read (written by another version) is left out.
    Ok(raw
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect())
}

async fn refresh(store: &Store, key: &str, ttl_ms: &str) -> Result<(), RedisError> {
    let mut pipe = redis::pipe();
    pipe.cmd("PEXPIRE").arg(key).arg(ttl_ms);
    store.run(&pipe).await?.take::<i64>().map(drop)
}

async fn private_flags(store: &Store, authors: &[u64]) -> Result<HashMap<u64, bool>, RedisError> {
    if authors.is_empty() {
        return Ok(HashMap::new());
    }
    let mut pipe = redis::pipe();
    for &a in authors {
        pipe.cmd("HGET").arg(store.keys().profile(a)).arg("private");
    }
    let mut r = store.run(&pipe).await?;
    let mut out = HashMap::with_capacity(authors.len());
    for &a in authors {
        out.insert(a, r.take::<Option<String>>()?.as_deref() == Some("1"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(post: u64, origin: Origin) -> Found {
        Found {
            post,
            author: post * 10,
            origin,
            weight: 0,
        }
    }

    #[test]
    fn interleave_takes_each_source_in_turn_each_post_once() {
        let a = [
            found(1, Origin::CoEngagement),
            found(2, Origin::CoEngagement),
        ];
        let b = [
            found(1, Origin::Trending),
            found(3, Origin::Trending),
            found(4, Origin::Trending),
        ];
        let got = interleave(&[&a, &b], 10, |_| true);
        let posts: Vec<(u64, Origin)> = got.iter().map(|f| (f.post, f.origin)).collect();
        assert_eq!(
            posts,
            [
                (1, Origin::CoEngagement),
                (3, Origin::Trending),
                (2, Origin::CoEngagement),
                (4, Origin::Trending)
            ]
        );
        assert_eq!(interleave(&[&a, &b], 3, |_| true).len(), 3);
        assert_eq!(interleave(&[&a, &b], 10, |f| f.post != 3).len(), 3);
    }

    #[test]
    fn cursors_round_trip_and_are_refused_on_another_surface() {
        let c = RankCursor {
            surface: "explore",
            session: "00ff".into(),
            offset: 50,
            then: None,
        };
        assert_eq!(RankCursor::decode(&c.encode(), Ranked::Explore).unwrap(), c);
        assert!(RankCursor::decode(&c.encode(), Ranked::Reels).is_err());
        let chrono = Cursor { ts: 5, id: 7 }.encode();
        let f = RankCursor {
            surface: "feed",
            session: "ab".into(),
            offset: 3,
            then: Some(chrono.clone()),
        };
        assert_eq!(RankCursor::decode(&f.encode(), Ranked::Feed).unwrap(), f);
        assert!(matches!(
            FeedCursor::decode(&chrono).unwrap(),
            FeedCursor::Chronological(Cursor { ts: 5, id: 7 })
        ));
        assert!(FeedCursor::decode("bm9wZQ").is_err());
    }

    #[test]
    fn the_prior_orders_by_smoothed_rates_and_weights_fewer_views_less() {
        let mut i = aperture_ranking::features::Inputs {
            age_ms: 0,
            media_type: MediaType::Photo,
            surface: Surface::Explore,
            likes: 0,
            comments: 0,
            shares: 0,
            saves: 0,
            views: 0,
            negative: 0,
            first_hour: 0,
            author_followers: 0,
            follows_author: false,
            affinity: 0.0,
            media_points: 0,
            total_points: 0,
            tag_views: 0,
            tag_engaged: 0,
            has_tags: false,
            viewer_negative_author: 0,
            author_views_7d: 0,
            author_interactions_7d: 0,
            media_views: 0,
            media_engaged: 0,
            has_topic: false,
            topic_views: 0,
            topic_engaged: 0,
            total_topic_engaged: 0,
            post_watch_ms: 0,
            post_watched: 0,
            author_watch_ms: 0,
            author_watched: 0,
        };
        let empty = prior(&i);
        assert!((empty.like - PRIOR_RATES[0]).abs() < 1e-12);
        i.views = 10;
        i.likes = 5;
        let liked = prior(&i);
        i.views = 1_000;
        i.likes = 500;
        let proven = prior(&i);
        assert!(empty.like < liked.like && liked.like < proven.like);
        assert!(proven.like < 0.5);
    }
}
