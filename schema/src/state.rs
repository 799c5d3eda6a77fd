//! Shapes of the derived state that the stream jobs write and the read API reads, beyond key
//! names ([`crate::keys`]): bucket sizes and lifetimes both sides must agree on.

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
