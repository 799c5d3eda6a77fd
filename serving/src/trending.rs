//! Trending hashtags: `GET /v1/trending?window=1h|24h|7d&limit=&at=`.
//!
//! The trending job counts each hashtag's posts in 5-minute and 1-hour buckets of event time
//! ([`TrendGrain`]). A window is the sum of the buckets it covers, ending at the bucket that
//! holds "now"; its **baseline** is the tag's own rate over the period before the window,
//! scaled to the window's length:
//!
//! | window | buckets        | baseline period                  |
//! |--------|----------------|----------------------------------|
//! | `1h`   | 12 × 5 min     | the 24 full hours before, ÷ 24   |
//! | `24h`  | 24 × 1 h       | the 6 days before, ÷ 6           |
//! | `7d`   | 168 × 1 h      | the 7 days before                |
//!
//! A tag's **score** is `(count − baseline) / sqrt(baseline + 1)`: how many "standard
//! deviations" (Poisson) the window stands above what the tag usually does. A rare tag that
//! bursts from 1 to 40 posts scores far above `#love` posting its usual 2,000, whose score is
//! about zero. Only tags posted by at least `trending.min-accounts` distinct accounts inside
//! the window are listed, so one account posting a tag 500 times does not trend it.
//!
//! "Now" is the trending job's event-time watermark (the newest tagged post it has counted), so
//! a replayed or simulated log trends as it did live; `at` (ms) asks for another instant.
//! Answers are computed from a few hundred bucket reads at most and kept for
//! [`CACHE_FOR`] per (window, limit, now rounded to the fine grain).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aperture_schema::state::TrendGrain;
use redis::RedisError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::Store;

/// The windows trending answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub enum Window {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl Window {
    pub fn parse(text: &str) -> Option<Window> {
        match text {
            "1h" => Some(Window::Hour),
            "24h" => Some(Window::Day),
            "7d" => Some(Window::Week),
            _ => None,
        }
    }

    /// The grain its buckets are read at, how many make the window, and how many windows'
    /// worth of buckets before it make the baseline.
    fn shape(self) -> (TrendGrain, i64, i64) {
        match self {
            Window::Hour => (TrendGrain::Fine, 12, 24),
            Window::Day => (TrendGrain::Coarse, 24, 6),
            Window::Week => (TrendGrain::Coarse, 168, 1),
        }
    }

    /// The buckets to read for this window at `now`: the window's, then the baseline's.
    pub fn plan(self, now: i64) -> Plan {
        let (grain, n, periods) = self.shape();
        let last = grain.start(now);
        let first = last - (n - 1) * grain.ms();
        let window: Vec<(TrendGrain, i64)> =
            (0..n).map(|i| (grain, first + i * grain.ms())).collect();
        // The baseline is read in hours, ending at the last hour that closes before the window.
        let hour = TrendGrain::Coarse.ms();
        let baseline_end = TrendGrain::Coarse.start(first);
        let baseline_hours = n * grain.ms() * periods / hour;
        let baseline = (1..=baseline_hours)
            .map(|i| (TrendGrain::Coarse, baseline_end - i * hour))
            .collect();
        Plan {
            window,
            baseline,
            periods,
            window_hours: (n * grain.ms()) as f64 / hour as f64,
            since: first,
        }
    }
}

/// The buckets one answer reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub window: Vec<(TrendGrain, i64)>,
    pub baseline: Vec<(TrendGrain, i64)>,
    /// How many window lengths the baseline spans.
    pub periods: i64,
    /// The window's length in hours.
    pub window_hours: f64,
    /// The window's first instant: posts from then on count for the distinct-accounts floor.
    pub since: i64,
}

impl Plan {
    /// How many window lengths of the baseline period have data, given the earliest post
    /// time counted (`trend_since`).
    pub fn baseline_windows(&self, history_since: Option<i64>) -> f64 {
        let Some(since) = history_since else {
            return 0.0;
        };
        let hour = TrendGrain::Coarse.ms();
        let Some(&(_, oldest)) = self.baseline.last() else {
            return 0.0;
        };
        let end = oldest + self.baseline.len() as i64 * hour;
        let from = TrendGrain::Coarse.start(since).max(oldest);
        let hours = ((end - from) / hour).clamp(0, self.baseline.len() as i64);
        hours as f64 / self.window_hours
    }
}

/// One trending tag.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Trend {
    #[schema(example = "sunset")]
    pub tag: String,
    /// `(count − baseline) / sqrt(baseline + 1)`.
    pub score: f64,
    /// Posts with the tag in the window.
    pub count: u64,
    /// The tag's usual count for a window this long (its baseline).
    pub previous: f64,
    /// `count / previous − 1`: +3.0 is four times the usual; absent for a tag new in the
    /// baseline period.
    pub change: Option<f64>,
    /// Distinct accounts that posted the tag in the window.
    pub accounts: u64,
}

/// The answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrendingPage {
    pub window: Window,
    /// The instant the window ends at (ms): the trending job's watermark unless `at` was given;
    /// absent when nothing was counted yet.
    pub at: Option<i64>,
    /// Best first.
    pub items: Vec<Trend>,
}

/// Scores tags from their window and baseline counts, the baseline spanning
/// `baseline_windows` window lengths (0: no history yet): the candidates, best first, before
/// the distinct-accounts floor. Ties go to the higher count, then the tag name.
pub fn rank(
    window: &HashMap<String, u64>,
    baseline: &HashMap<String, u64>,
    baseline_windows: f64,
) -> Vec<Trend> {
    let mut out: Vec<Trend> = window
        .iter()
        .filter(|&(_, &count)| count > 0)
        .map(|(tag, &count)| {
            let previous = if baseline_windows > 0.0 {
                baseline.get(tag).copied().unwrap_or(0) as f64 / baseline_windows
            } else {
                0.0
            };
            Trend {
                tag: tag.clone(),
                score: (count as f64 - previous) / (previous + 1.0).sqrt(),
                count,
                previous,
                change: (previous > 0.0).then(|| count as f64 / previous - 1.0),
                accounts: 0,
            }
        })
        .filter(|t| t.score > 0.0)
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.count.cmp(&a.count))
            .then(a.tag.cmp(&b.tag))
    });
    out
}

/// How long an answer is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(2);

/// What an answer is computed for: window, limit and the fine bucket holding "now".
type CacheKey = (Window, usize, i64);

/// Answers computed recently.
#[derive(Debug, Default)]
pub struct TrendingCache(Mutex<HashMap<CacheKey, (Instant, TrendingPage)>>);

/// The trending tags of `window` at `at` (or the job's watermark), at most `limit`.
pub async fn page(
    store: &Store,
    cache: &TrendingCache,
    window: Window,
    limit: usize,
    at: Option<i64>,
    partitions: u32,
    min_accounts: usize,
) -> Result<TrendingPage, RedisError> {
    let now = match at {
        Some(at) => Some(at),
        None => watermark(store, partitions).await?,
    };
    let Some(now) = now else {
        return Ok(TrendingPage {
            window,
            at: None,
            items: Vec::new(),
        });
    };
    let cache_key = (window, limit, TrendGrain::Fine.start(now));
    if let Some((when, page)) = cache.0.lock().expect("cache lock").get(&cache_key)
        && when.elapsed() < CACHE_FOR
    {
        return Ok(page.clone());
    }

    let plan = window.plan(now);
    let keys = store.keys();
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(keys.trend_since());
    for (grain, start) in plan.window.iter().chain(&plan.baseline) {
        pipe.cmd("HGETALL")
            .arg(keys.trend_bucket(grain.name(), *start));
    }
    let mut replies = store.run(&pipe).await?;
    let history_since: Option<i64> = replies.take()?;
    let mut in_window: HashMap<String, u64> = HashMap::new();
    let mut in_baseline: HashMap<String, u64> = HashMap::new();
    for i in 0..plan.window.len() + plan.baseline.len() {
        let bucket: HashMap<String, i64> = replies.take()?;
        let into = if i < plan.window.len() {
            &mut in_window
        } else {
            &mut in_baseline
        };
        for (tag, n) in bucket {
            *into.entry(tag).or_default() += n.max(0) as u64;
        }
    }
    let candidates = rank(
        &in_window,
        &in_baseline,
        plan.baseline_windows(history_since),
    );

    // The distinct-accounts floor, checked on candidates in order until the page is full.
    let mut items = Vec::with_capacity(limit);
    for chunk in candidates.chunks(limit.max(16)) {
        let mut pipe = redis::pipe();
        for trend in chunk {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(keys.trend_posts(&trend.tag))
                .arg(plan.since)
                .arg("+inf");
        }
        let mut replies = store.run(&pipe).await?;
        for trend in chunk {
            let posts: Vec<String> = replies.take()?;
            let accounts: HashSet<&str> = posts
                .iter()
                .filter_map(|m| m.split_once(':').map(|(author, _)| author))
                .collect();
            if accounts.len() >= min_accounts && items.len() < limit {
                let mut trend = trend.clone();
                trend.accounts = accounts.len() as u64;
                items.push(trend);
            }
        }
        if items.len() >= limit {
            break;
        }
    }
    let page = TrendingPage {
        window,
        at: Some(now),
        items,
    };
    let mut entries = cache.0.lock().expect("cache lock");
    entries.retain(|_, (when, _)| when.elapsed() < CACHE_FOR);
    entries.insert(cache_key, (Instant::now(), page.clone()));
    Ok(page)
}

/// The trending job's watermark: the newest tagged post counted on any partition.
async fn watermark(store: &Store, partitions: u32) -> Result<Option<i64>, RedisError> {
    let mut pipe = redis::pipe();
    for p in 0..partitions {
        pipe.cmd("GET")
            .arg(store.keys().job_watermark("trending", p));
    }
    let mut replies = store.run(&pipe).await?;
    let mut newest = None;
    for _ in 0..partitions {
        newest = newest.max(replies.take::<Option<i64>>()?);
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|&(t, n)| (t.to_owned(), n)).collect()
    }

    #[test]
    fn a_burst_of_a_rare_tag_beats_the_steady_volume_of_a_common_one() {
        // `love` posts 2,000 an hour, as usual; `eclipse` goes from about 1 to 40.
        let window = counts(&[("love", 2_000), ("eclipse", 40)]);
        let baseline = counts(&[("love", 48_000), ("eclipse", 24)]);
        let ranked = rank(&window, &baseline, 24.0);
        assert_eq!(ranked[0].tag, "eclipse");
        assert!(ranked.iter().all(|t| t.tag != "love"), "{ranked:?}");
        assert_eq!(ranked[0].change, Some(39.0));
    }

    #[test]
    fn a_new_tag_has_no_change_but_scores() {
        let ranked = rank(&counts(&[("new", 5)]), &HashMap::new(), 24.0);
        assert_eq!(ranked[0].change, None);
        assert_eq!(ranked[0].score, 5.0);
    }

    #[test]
    fn the_hour_window_is_twelve_fine_buckets_after_a_day_of_hours() {
        let now = 10 * 86_400_000 + 3_600_000 * 5 + 7 * 60_000;
        let plan = Window::Hour.plan(now);
        assert_eq!(plan.window.len(), 12);
        assert_eq!(plan.window.last().unwrap().1, TrendGrain::Fine.start(now));
        assert!(plan.window.iter().all(|(g, _)| *g == TrendGrain::Fine));
        assert_eq!(plan.baseline.len(), 24);
        // The baseline ends where the hour holding the window's start begins: no overlap.
        let first = plan.window[0].1;
        assert!(plan.baseline.iter().all(|(_, s)| s + 3_600_000 <= first));
        assert_eq!(plan.since, first);
    }

    #[test]
    fn a_young_history_scales_the_baseline_to_what_was_seen() {
        let now = 10 * 86_400_000 + 3_600_000 * 5;
        let plan = Window::Hour.plan(now);
        assert_eq!(plan.baseline_windows(None), 0.0);
        assert_eq!(plan.baseline_windows(Some(0)), 24.0);
        // Six hours of history before the window's hour: six one-hour windows.
        let window_hour = TrendGrain::Coarse.start(plan.window[0].1);
        assert_eq!(
            plan.baseline_windows(Some(window_hour - 6 * 3_600_000)),
            6.0
        );
        assert_eq!(plan.baseline_windows(Some(now)), 0.0);
        // So `love` at its usual 100 an hour does not trend on the deployment's first day.
        let ranked = rank(
            &counts(&[("love", 100)]),
            &counts(&[("love", 600)]),
            plan.baseline_windows(Some(window_hour - 6 * 3_600_000)),
        );
        assert!(ranked.is_empty(), "{ranked:?}");
    }

    #[test]
    fn day_and_week_windows_read_hours() {
        let now = 20 * 86_400_000 + 1;
        let day = Window::Day.plan(now);
        assert_eq!(
            (day.window.len(), day.baseline.len(), day.periods),
            (24, 144, 6)
        );
        let week = Window::Week.plan(now);
        assert_eq!(
            (week.window.len(), week.baseline.len(), week.periods),
            (168, 168, 1)
        );
        assert_eq!(week.baseline[0].1 + 3_600_000, week.window[0].1);
    }
}
