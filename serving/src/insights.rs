//! Creators' insights: an account's figures over a range of UTC days, against the range of equal
//! length before it, and its top posts — what `GET /v1/insights` answers and the dashboard
//! shows.
//!
//! # Definitions (the professional dashboard's, since 2025)
//!
//! - **views**: times the creator's posts were shown or played, repeats included;
//! - **reach**: distinct accounts that saw the creator's posts; **accounts engaged**: distinct
//!   accounts that liked, commented, shared or saved. Both are distinct *over the range*, so
//!   they are not a sum of days: the engagement job keeps a HyperLogLog per creator and day and
//!   a range is one `PFCOUNT` over its days' keys. They are estimates with a standard error of
//!   0.81%;
//! - **interactions**: likes, comments, shares and saves (an undo takes one back);
//! - **follows**, **unfollows** and their difference (net);
//! - **watch time**: total video and reel watch time, and its average per view that reported
//!   one.
//!
//! The creator's own activity counts on none of them. Every figure of one creator lives in the
//! creator's hash tag (`{u:<id>}`), so a range is one pipeline to one slot.
//!
//! # Ranges
//!
//! `range=7d|28d|90d` ends yesterday (UTC), so it holds full days only; `from` and `to`
//! (`YYYY-MM-DD`) give a custom range of up to [`MAX_DAYS`], which may end today. Today is then
//! marked partial and left out of the comparison, which sets the range's full days against as
//! many days right before them.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use redis::RedisError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::store::Store;

/// The longest custom range, in days.
pub const MAX_DAYS: i64 = 366;

/// The relative standard error of a Redis HyperLogLog.
pub const HLL_STANDARD_ERROR: f64 = 0.0081;

/// Top posts shown.
pub const TOP_POSTS: usize = 10;

/// A range of UTC days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The preset it came from (`7d`, `28d`, `90d`), if any.
    pub preset: Option<u32>,
}

impl Range {
    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    fn each(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        (0..self.days()).map(|d| self.from + Duration::days(d))
    }

    /// The range from the query string (`range`, or `from` and `to`), `today` being the
    /// current UTC day.
    pub fn parse(params: &HashMap<String, String>, today: NaiveDate) -> Result<Range, ApiError> {
        let yesterday = today - Duration::days(1);
        let custom = params.contains_key("from") || params.contains_key("to");
        match params.get("range").map(String::as_str) {
            Some("custom") => {}
            None if custom => {}
            None => return Ok(Range::preset(7, yesterday)),
            Some(preset) => {
                let days = match preset {
                    "7d" => 7,
                    "28d" => 28,
                    "90d" => 90,
                    other => {
                        return Err(ApiError::bad_request(
                            "range",
                            format!("range must be 7d, 28d, 90d or custom, got {other:?}"),
                        ));
                    }
                };
                return Ok(Range::preset(days, yesterday));
            }
        }
        let day = |field: &'static str| -> Result<NaiveDate, ApiError> {
            let text = params.get(field).ok_or_else(|| {
                ApiError::bad_request(field, format!("a custom range needs {field} (YYYY-MM-DD)"))
            })?;
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                ApiError::bad_request(
                    field,
                    format!("{field} must be a date as YYYY-MM-DD, got {text:?}"),
                )
            })
        };
        let (from, to) = (day("from")?, day("to")?);
        if to > today {
            return Err(ApiError::bad_request(
                "to",
                format!("to is {to}, after today ({today} UTC)"),
            ));
        }
        if from > to {
            return Err(ApiError::bad_request(
                "from",
                format!("from ({from}) is after to ({to})"),
            ));
        }
        let range = Range {
            from,
            to,
            preset: None,
        };
        if range.days() > MAX_DAYS {
            return Err(ApiError::bad_request(
                "from",
                format!(
                    "the range holds {} days; at most {MAX_DAYS} are allowed",
                    range.days()
                ),
            ));
        }
        Ok(range)
    }

    fn preset(days: u32, to: NaiveDate) -> Range {
        Range {
            from: to - Duration::days(i64::from(days) - 1),
            to,
            preset: Some(days),
        }
    }

    /// The query string that names this range.
    pub fn query(&self) -> String {
        match self.preset {
            Some(days) => format!("range={days}d"),
            None => format!("range=custom&from={}&to={}", self.from, self.to),
        }
    }
}

/// Exact counts over some days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Counts {
    pub views: i64,
    /// Likes, comments, shares and saves.
    pub interactions: i64,
    /// Interactions by kind, as they stand (an unlike takes its like back).
    pub likes: i64,
    pub comments: i64,
    pub shares: i64,
    pub saves: i64,
    /// Visits of the creator's profile by other accounts.
    pub profile_visits: i64,
    pub follows: i64,
    pub unfollows: i64,
    /// `follows - unfollows`.
    pub net_follows: i64,
    /// Total video and reel watch time, in ms.
    pub watch_ms: i64,
    /// Views that reported a watch time.
    pub watch_views: i64,
    /// `watch_ms / watch_views`; absent without such views.
    pub avg_watch_ms: Option<f64>,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.views += other.views;
        self.interactions += other.interactions;
        self.likes += other.likes;
        self.comments += other.comments;
        self.shares += other.shares;
        self.saves += other.saves;
        self.profile_visits += other.profile_visits;
        self.follows += other.follows;
        self.unfollows += other.unfollows;
        self.watch_ms += other.watch_ms;
        self.watch_views += other.watch_views;
        self.finish();
    }

    fn finish(&mut self) {
        self.net_follows = self.follows - self.unfollows;
        self.avg_watch_ms =
            (self.watch_views > 0).then(|| self.watch_ms as f64 / self.watch_views as f64);
    }
}

/// A distinct count estimated by a HyperLogLog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Estimate {
    pub value: u64,
    /// One standard error, in accounts (0.81% of the value).
    pub standard_error: f64,
}

impl Estimate {
    fn of(value: u64) -> Estimate {
        Estimate {
            value,
            standard_error: value as f64 * HLL_STANDARD_ERROR,
        }
    }
}

/// An account's figures over some days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Figures {
    #[serde(flatten)]
    pub counts: Counts,
    pub reach: Estimate,
    pub accounts_engaged: Estimate,
}

/// One day's figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Day {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Today, still being counted.
    pub partial: bool,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The comparison with the previous range of equal length.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    /// The full days of the range that are compared (a partial today is left out).
    pub from: String,
    pub to: String,
    pub current: Figures,
    /// The same number of days right before `from`.
    pub previous_from: String,
    pub previous_to: String,
    pub previous: Figures,
}

/// One post's figures to date.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PostFigures {
    pub post_id: u64,
    pub created_at: i64,
    pub media_type: Option<String>,
    pub views: i64,
    /// Distinct viewers (HyperLogLog estimate).
    pub reach: u64,
    pub likes: i64,
    pub comments: i64,
    pub shares: i64,
    pub saves: i64,
    pub interactions: i64,
    pub watch_ms: i64,
}

/// What the top posts are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    Views,
    Reach,
    Interactions,
    WatchTime,
}

impl SortBy {
    pub const ALL: [SortBy; 4] = [
        SortBy::Views,
        SortBy::Reach,
        SortBy::Interactions,
        SortBy::WatchTime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Views => "views",
            SortBy::Reach => "reach",
            SortBy::Interactions => "interactions",
            SortBy::WatchTime => "watch_time",
        }
    }

    pub fn parse(params: &HashMap<String, String>) -> Result<SortBy, ApiError> {
        let Some(text) = params.get("sort") else {
            return Ok(SortBy::Views);
        };
        SortBy::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "sort",
                    format!("sort must be views, reach, interactions or watch_time, got {text:?}"),
                )
            })
    }

    fn key(self, p: &PostFigures) -> i64 {
        match self {
            SortBy::Views => p.views,
            SortBy::Reach => p.reach as i64,
            SortBy::Interactions => p.interactions,
            SortBy::WatchTime => p.watch_ms,
        }
    }
}

/// An account's insights over a range.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AccountInsights {
    pub creator_id: u64,
    pub from: String,
    pub to: String,
    /// Exact counts and distinct estimates over the whole range.
    pub totals: Figures,
    pub comparison: Comparison,
    /// One entry per day of the range, oldest first.
    pub daily: Vec<Day>,
    /// Newest event time the jobs have applied (ms), as far as they report it.
    pub data_through_ms: Option<i64>,
    /// The range's views by surface. A surface fewer than `min_accounts` accounts used is
    /// folded into `other`, so the parts always add up to the total views.
    pub views_by_surface: Vec<SurfaceViews>,
    /// The minimum of accounts a part of a breakdown needs to be shown on its own.
    pub min_accounts: u64,
    /// The creator's posts published in the range, with their figures to date, best first.
    pub top_posts: Vec<PostFigures>,
    pub sort: SortBy,
}

/// The day-rollup fields read, in this order: [`Counts`]'s, then the views per surface of
/// [`SURFACES`].
const FIELDS: [&str; 16] = [
    "views",
    "interactions",
    "follows",
    "unfollows",
    "watch_ms",
    "watch_views",
    "likes",
    "comments",
    "shares",
    "saves",
    "profile_visits",
    "views_feed",
    "views_explore",
    "views_reels",
    "views_profile",
    "views_hashtag",
];

/// The surfaces of a view, in the order of [`FIELDS`]' per-surface views.
pub const SURFACES: [&str; 5] = ["feed", "explore", "reels", "profile", "hashtag"];

/// Where a range's views came from: one part per surface that enough accounts used, and
/// `other` for the rest.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SurfaceViews {
    /// `feed`, `explore`, `reels`, `profile`, `hashtag`, or `other`: the surfaces fewer than
    /// the minimum of accounts used, together.
    pub surface: String,
    pub views: i64,
    /// Distinct accounts that viewed from this surface (estimated); absent for `other`, whose
    /// surfaces' accounts may overlap.
    pub accounts: Option<Estimate>,
}

/// The per-post fields read, in this order.
const POST_FIELDS: [&str; 7] = [
    "views",
    "likes",
    "comments",
    "shares",
    "saves",
    "watch_ms",
    "created_at",
];

/// Reads `creator`'s insights over `range`; `today` marks the partial day.
pub async fn account(
    store: &Store,
    creator: u64,
    range: Range,
    today: NaiveDate,
    sort: SortBy,
    partitions: u32,
    min_accounts: u64,
) -> Result<AccountInsights, RedisError> {
    let keys = store.keys();
    let full_to = range.to.min(today - Duration::days(1));
    let compared = Range {
        from: range.from,
        to: full_to.max(range.from - Duration::days(1)),
        preset: None,
    };
    let n = (compared.to - compared.from).num_days() + 1;
    let previous = Range {
        from: compared.from - Duration::days(n.max(0)),
        to: compared.from - Duration::days(1),
        preset: None,
    };
    let day_key = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let reach_keys = |r: &Range| -> Vec<String> {
        r.each()
            .map(|d| keys.creator_reach(creator, &day_key(d)))
            .collect()
    };
    let engaged_keys = |r: &Range| -> Vec<String> {
        r.each()
            .map(|d| keys.creator_engaged(creator, &day_key(d)))
            .collect()
    };

    // One pipeline, one slot: the range's and the previous range's days, and the distinct
    // counts over each range and each day.
    let mut pipe = redis::pipe();
    let days: Vec<NaiveDate> = previous.each().chain(range.each()).collect();
    for d in &days {
        pipe.cmd("HMGET")
            .arg(keys.creator_daily(creator, &day_key(*d)))
            .arg(&FIELDS[..]);
    }
    for d in range.each() {
        pipe.cmd("PFCOUNT")
            .arg(keys.creator_reach(creator, &day_key(d)));
        pipe.cmd("PFCOUNT")
            .arg(keys.creator_engaged(creator, &day_key(d)));
    }
    // The compared days are the range's unless today is in it: then count them apart.
    let partial = compared
        != Range {
            preset: None,
            ..range
        };
    let ranges: Vec<&Range> = if partial {
        vec![&range, &compared, &previous]
    } else {
        vec![&range, &previous]
    };
    for r in ranges {
        for k in [reach_keys(r), engaged_keys(r)] {
            if k.is_empty() {
                pipe.cmd("ECHO").arg(0);
            } else {
                pipe.cmd("PFCOUNT").arg(k);
            }
        }
    }
    for surface in SURFACES {
        let surface_keys: Vec<String> = range
            .each()
            .map(|d| keys.creator_surface_reach(creator, &day_key(d), surface))
            .collect();
        pipe.cmd("PFCOUNT").arg(surface_keys);
    }
    for p in 0..partitions {
        pipe.cmd("GET").arg(keys.job_watermark("trending", p));
    }
    pipe.cmd("ZRANGE")
        .arg(keys.recent_posts(creator))
        .arg(
            range
                .from
                .and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp_millis()),
        )
        .arg(
            range
                .to
                .and_hms_opt(23, 59, 59)
                .map_or(0, |t| t.and_utc().timestamp_millis() + 999),
        )
        .arg("BYSCORE");
    let mut replies = store.run(&pipe).await?;
    let mut counts: HashMap<NaiveDate, Counts> = HashMap::new();
    let mut surface_views = [0i64; SURFACES.len()];
    for d in &days {
        let v: Vec<Option<i64>> = replies.take()?;
        let f = |i: usize| v.get(i).copied().flatten().unwrap_or(0);
        let mut c = Counts {
            views: f(0),
            interactions: f(1),
            follows: f(2),
            unfollows: f(3),
            watch_ms: f(4),
            watch_views: f(5),
            likes: f(6),
            comments: f(7),
            shares: f(8),
            saves: f(9),
            profile_visits: f(10),
            ..Counts::default()
        };
        c.finish();
        counts.insert(*d, c);
        if (range.from..=range.to).contains(d) {
            for (i, total) in surface_views.iter_mut().enumerate() {
                *total += f(11 + i);
            }
        }
    }
    let mut daily = Vec::with_capacity(range.days() as usize);
    for d in range.each() {
        let reach: u64 = replies.take()?;
        let engaged: u64 = replies.take()?;
        daily.push(Day {
            day: day_key(d),
            partial: d >= today,
            figures: Figures {
                counts: counts.get(&d).copied().unwrap_or_default(),
                reach: Estimate::of(reach),
                accounts_engaged: Estimate::of(engaged),
            },
        });
    }
    let mut distinct = || -> Result<(Estimate, Estimate), RedisError> {
        let reach: u64 = parse_count(replies.take()?);
        let engaged: u64 = parse_count(replies.take()?);
        Ok((Estimate::of(reach), Estimate::of(engaged)))
    };
    let sum = |r: &Range| {
        let mut c = Counts::default();
        for d in r.each() {
            c.add(&counts.get(&d).copied().unwrap_or_default());
        }
        c.finish();
        c
    };
    let figures = |r: &Range, (reach, accounts_engaged): (Estimate, Estimate)| Figures {
        counts: sum(r),
        reach,
        accounts_engaged,
    };
    let totals = figures(&range, distinct()?);
    let current = if partial {
        figures(&compared, distinct()?)
    } else {
        totals
    };
    let before = figures(&previous, distinct()?);
    let mut surface_accounts = [0u64; SURFACES.len()];
    for accounts in &mut surface_accounts {
        *accounts = parse_count(replies.take()?);
    }
    let views_by_surface = fold_surfaces(&surface_views, &surface_accounts, min_accounts);
    // The trending job's watermark: the newest tagged post counted on any partition.
    let mut data_through: Option<i64> = None;
    for _ in 0..partitions {
        data_through = data_through.max(replies.take::<Option<i64>>()?);
    }
    let posts: Vec<u64> = replies.take()?;
    let mut top_posts = top_posts(store, &posts).await?;
    top_posts.sort_by_key(|p| (std::cmp::Reverse(sort.key(p)), std::cmp::Reverse(p.post_id)));
    top_posts.truncate(TOP_POSTS);
    Ok(AccountInsights {
        creator_id: creator,
        from: day_key(range.from),
        to: day_key(range.to),
        totals,
        comparison: Comparison {
            from: day_key(compared.from),
            to: day_key(compared.to),
            current,
            previous_from: day_key(previous.from),
            previous_to: day_key(previous.to),
            previous: before,
        },
        daily,
        data_through_ms: data_through,
        views_by_surface,
        min_accounts,
        top_posts,
        sort,
    })
}

/// Views by surface with every surface fewer than `min_accounts` accounts used folded into one
/// `other` part (listed last, and only when it has views); the parts add up to the views.
pub fn fold_surfaces(
    views: &[i64; SURFACES.len()],
    accounts: &[u64; SURFACES.len()],
    min_accounts: u64,
) -> Vec<SurfaceViews> {
    let mut parts = Vec::new();
    let mut other = 0;
    for ((surface, &views), &accounts) in SURFACES.iter().zip(views).zip(accounts) {
        if accounts >= min_accounts.max(1) {
            parts.push(SurfaceViews {
                surface: (*surface).to_owned(),
                views,
                accounts: Some(Estimate::of(accounts)),
            });
        } else {
            other += views;
        }
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.views));
    if other > 0 {
        parts.push(SurfaceViews {
            surface: "other".to_owned(),
            views: other,
            accounts: None,
        });
    }
    parts
}

/// `PFCOUNT`'s answer, or the `ECHO 0` that stands for an empty range.
fn parse_count(v: redis::Value) -> u64 {
    redis::from_redis_value::<u64>(v).unwrap_or(0)
}

/// The figures of `posts` to date (deleted ones and ones not created yet left out).
async fn top_posts(store: &Store, posts: &[u64]) -> Result<Vec<PostFigures>, RedisError> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    let keys = store.keys();
    let mut pipe = redis::pipe();
    for &post in posts {
        pipe.cmd("HMGET")
            .arg(keys.post_counts(post))
            .arg(&POST_FIELDS[..]);
        pipe.cmd("PFCOUNT").arg(keys.post_viewers(post));
        pipe.cmd("HMGET")
            .arg(keys.post_meta(post))
            .arg(&["media_type", "deleted"][..]);
    }
    let mut replies = store.run(&pipe).await?;
    let mut out = Vec::with_capacity(posts.len());
    for &post in posts {
        let v: Vec<Option<i64>> = replies.take()?;
        let reach: u64 = replies.take()?;
        let meta: Vec<Option<String>> = replies.take()?;
        let f = |i: usize| v.get(i).copied().flatten().unwrap_or(0);
        if meta.get(1).cloned().flatten().is_some_and(|d| d == "1") {
            continue;
        }
        out.push(PostFigures {
            post_id: post,
            created_at: f(6),
            media_type: meta.first().cloned().flatten(),
            views: f(0),
            reach,
            likes: f(1),
            comments: f(2),
            shares: f(3),
            saves: f(4),
            interactions: f(1) + f(2) + f(3) + f(4),
            watch_ms: f(5),
        });
    }
    Ok(out)
}

/// The current UTC day of `now_ms`.
pub fn today(now_ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(now_ms)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// The change from `before` to `now` in percent; absent when `before` is 0.
pub fn change(now: f64, before: f64) -> Option<f64> {
    (before != 0.0).then(|| (now - before) / before.abs() * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn presets_end_yesterday_and_hold_full_days() {
        let today = date("2026-03-10");
        let r = Range::parse(&params(&[("range", "7d")]), today).unwrap();
        assert_eq!(
            (r.from, r.to, r.days()),
            (date("2026-03-03"), date("2026-03-09"), 7)
        );
        let r = Range::parse(&params(&[]), today).unwrap();
        assert_eq!(r.days(), 7);
        let r = Range::parse(&params(&[("range", "90d")]), today).unwrap();
        assert_eq!((r.days(), r.query()), (90, "range=90d".to_owned()));
    }

    #[test]
    fn custom_ranges_are_checked_field_by_field() {
        let today = date("2026-03-10");
        let ok = Range::parse(
            &params(&[
                ("range", "custom"),
                ("from", "2026-03-01"),
                ("to", "2026-03-10"),
            ]),
            today,
        )
        .unwrap();
        assert_eq!(ok.days(), 10);
        assert_eq!(
            ok.query(),
            "range=custom&from=2026-03-01&to=2026-03-10".to_owned()
        );
        let field = |p: &[(&str, &str)]| match Range::parse(&params(p), today) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("{p:?}: {other:?}"),
        };
        assert_eq!(field(&[("range", "8d")]), "range");
        assert_eq!(field(&[("range", "custom")]), "from");
        assert_eq!(field(&[("from", "2026-03-01")]), "to");
        assert_eq!(field(&[("from", "March"), ("to", "2026-03-02")]), "from");
        assert_eq!(
            field(&[("from", "2026-03-05"), ("to", "2026-03-02")]),
            "from"
        );
        assert_eq!(field(&[("from", "2026-03-05"), ("to", "2026-03-11")]), "to");
        assert_eq!(
            field(&[("from", "2024-01-01"), ("to", "2026-03-02")]),
            "from"
        );
    }

    #[test]
    fn changes_are_relative_to_the_previous_figure() {
        assert_eq!(change(150.0, 100.0), Some(50.0));
        assert_eq!(change(50.0, 100.0), Some(-50.0));
        assert_eq!(change(5.0, 0.0), None);
        assert_eq!(change(-2.0, -4.0), Some(50.0));
    }
}
