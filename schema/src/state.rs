//! Shapes of the derived state that the stream jobs write and the read API reads, beyond key
//! names ([`crate::keys`]): bucket sizes and lifetimes both sides must agree on.

/// Time zero of the engagement job's affinity terms: 2025-01-01T00:00:00Z. With a 7-day
/// half-life a term grows by 2^52 a year, well inside an f64 for decades.
pub const AFFINITY_EPOCH_MS: i64 = 1_735_689_600_000;

/// Views kept in a viewer's `view_history`, and posts in their `engaged_posts`: enough for
/// ranking's per-viewer rates, bounded per account.
pub const HISTORY_CAP: usize = 200;
pub const ENGAGED_CAP: usize = 1_000;

/// An affinity as stored (`Σ weight · 2^((ts − epoch) / half-life)`) read at `at_ms`.
pub fn affinity_at(stored: f64, at_ms: i64, half_life_ms: f64) -> f64 {
    stored * 2f64.powf(-((at_ms - AFFINITY_EPOCH_MS) as f64) / half_life_ms)
}

/// `YYYY-MM-DD` (UTC) of an event time in ms: the day of `creator_daily` keys.
pub fn utc_day(ts_ms: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = ts_ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// How long a story lives: 24 h from its event time.
pub const STORY_TTL_MS: i64 = 24 * 3600 * 1000;

/// Trending keeps hashtag counts in buckets of two sizes (`trend_bucket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendGrain {
    /// 5-minute buckets: the 1 h window.
    Fine,
    /// 1-hour buckets: the 24 h and 7 d windows, and every baseline.
    Coarse,
}

impl TrendGrain {
    pub const ALL: [TrendGrain; 2] = [TrendGrain::Fine, TrendGrain::Coarse];

    /// The bucket's length in ms.
    pub const fn ms(self) -> i64 {
        match self {
            TrendGrain::Fine => 5 * 60 * 1000,
            TrendGrain::Coarse => 3600 * 1000,
        }
    }

    /// Its name in `trend_bucket` keys.
    pub const fn name(self) -> &'static str {
        match self {
            TrendGrain::Fine => "5m",
            TrendGrain::Coarse => "1h",
        }
    }

    /// The start of the bucket holding event time `ts`.
    pub const fn start(self, ts: i64) -> i64 {
        ts.div_euclid(self.ms()) * self.ms()
    }
}

/// How much trending history is kept: the 7 d window, a 7 d baseline before it, and a day of
/// slack.
pub const TREND_KEEP_MS: i64 = 15 * 24 * 3600 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_their_grain_even_before_the_epoch() {
        assert_eq!(TrendGrain::Fine.start(299_999), 0);
        assert_eq!(TrendGrain::Fine.start(300_000), 300_000);
        assert_eq!(TrendGrain::Coarse.start(-1), -3_600_000);
    }
}
