//! Re-ranking: from model scores to the order a page shows, after scoring and before serving
//! (DESIGN.md §4.7).
//!
//! A greedy pass places, at each step, the candidate whose adjusted score is highest:
//!
//! - **freshness**: `score × (1 + w · 2^(−age / half-life))`;
//! - **author diversity**: an author's k-th placed item scores `decay^(k−1)` of its own;
//! - **media mix**: each item of the same media type among the four placed just before
//!   multiplies by the media decay;
//! - **author cap** (Explore, Reels): an author placed `cap` times in the last `window − 1`
//!   items is not eligible, so any `window` consecutive items hold at most `cap` of one
//!   author, whatever the page boundaries. Where nothing else is eligible the rest are left
//!   out. The ranked feed (`strict = false`) keeps every item: when only capped authors remain
//!   their items follow in score order.
//!
//! Scores can be negative (negative feedback is subtracted), so the factors apply to
//! `max(score, 0)` and ties fall back to the raw score, then the post id.

use std::collections::HashMap;

use aperture_schema::config::RankServingConfig;
use aperture_schema::event::MediaType;

/// A scored candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored<S> {
    pub post: u64,
    pub author: u64,
    pub media_type: MediaType,
    pub age_ms: i64,
    /// The model's score, already multiplied by any per-item factor (a seen post's).
    pub score: f64,
    /// Whatever the caller carries along (its source, its breakdown).
    pub extra: S,
}

/// The re-ranking parameters (see `ranking.serving`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub author_cap: usize,
    pub window: usize,
    pub author_decay: f64,
    pub media_decay: f64,
    pub freshness_weight: f64,
    pub freshness_half_life_ms: f64,
}

impl Rules {
    pub fn from_config(c: &RankServingConfig) -> Rules {
        Rules {
            author_cap: c.author_cap,
            window: c.page_window,
            author_decay: c.author_decay,
            media_decay: c.media_decay,
            freshness_weight: c.freshness_weight,
            freshness_half_life_ms: c.freshness_half_life.as_millis() as f64,
        }
    }

    fn fresh(&self, s: f64, age_ms: i64) -> f64 {
        let age = age_ms.max(0) as f64;
        s.max(0.0) * (1.0 + self.freshness_weight * (-age / self.freshness_half_life_ms).exp2())
    }
}

/// Media types looked back on for the mix.
const MEDIA_LOOKBACK: usize = 4;

/// Orders `items` (each post once) by the rules, `limit` of them at most; `strict` leaves out
/// what the author cap excludes, otherwise every item is kept. `before` is what was placed
/// ahead of them (author and media type, oldest first: a session's earlier items), so the cap
/// and the mix hold across the seam.
pub fn rerank<S>(
    items: Vec<Scored<S>>,
    rules: &Rules,
    strict: bool,
    limit: usize,
    before: &[(u64, MediaType)],
) -> Vec<Scored<S>> {
    let mut left: Vec<(f64, Scored<S>)> = items
        .into_iter()
        .map(|s| (rules.fresh(s.score, s.age_ms), s))
        .collect();
    let mut out: Vec<Scored<S>> = Vec::with_capacity(left.len().min(limit));
    let mut placed: Vec<(u64, MediaType)> = before.to_vec();
    let mut placed_by: HashMap<u64, usize> = HashMap::new();
    // Authors among the last `window − 1` placed, with how often.
    let mut in_window: HashMap<u64, usize> = HashMap::new();
    let span = rules.window.saturating_sub(1);
    for &(a, _) in &placed[placed.len().saturating_sub(span)..] {
        *in_window.entry(a).or_default() += 1;
    }
    while !left.is_empty() && out.len() < limit {
        let tail = &placed[placed.len().saturating_sub(MEDIA_LOOKBACK)..];
        let mut best: Option<(usize, f64, bool)> = None;
        for (k, (base, s)) in left.iter().enumerate() {
            let eligible = in_window.get(&s.author).copied().unwrap_or(0) < rules.author_cap;
            if strict && !eligible {
                continue;
            }
            let n = placed_by.get(&s.author).copied().unwrap_or(0);
            let same_media = tail.iter().filter(|o| o.1 == s.media_type).count();
            let adjusted = base
                * rules.author_decay.powi(n as i32)
                * rules.media_decay.powi(same_media as i32);
            let better = match best {
                None => true,
                Some((b, b_adj, b_ok)) => {
                    let other = &left[b].1;
                    (eligible, adjusted, s.score, std::cmp::Reverse(s.post)).partial_cmp(&(
                        b_ok,
                        b_adj,
                        other.score,
                        std::cmp::Reverse(other.post),
                    )) == Some(std::cmp::Ordering::Greater)
                }
            };
            if better {
                best = Some((k, adjusted, eligible));
            }
        }
        let Some((k, _, _)) = best else { break };
        let (_, s) = left.swap_remove(k);
        *placed_by.entry(s.author).or_default() += 1;
        *in_window.entry(s.author).or_default() += 1;
        placed.push((s.author, s.media_type));
        out.push(s);
        if placed.len() > span {
            let gone = placed[placed.len() - 1 - span].0;
            if let Some(n) = in_window.get_mut(&gone) {
                *n -= 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rules() -> Rules {
        Rules {
            author_cap: 2,
            window: 5,
            author_decay: 0.6,
            media_decay: 0.85,
            freshness_weight: 0.3,
            freshness_half_life_ms: 86_400_000.0,
        }
    }

    fn item(post: u64, author: u64, score: f64) -> Scored<()> {
        Scored {
            post,
            author,
            media_type: MediaType::Photo,
            age_ms: 0,
            score,
            extra: (),
        }
    }

    #[test]
    fn a_second_author_beats_the_first_authors_slightly_better_posts() {
        let out = rerank(
            vec![item(1, 7, 1.0), item(2, 7, 0.95), item(3, 8, 0.9)],
            &rules(),
            true,
            usize::MAX,
            &[],
        );
        let posts: Vec<u64> = out.iter().map(|s| s.post).collect();
        assert_eq!(posts, [1, 3, 2]);
    }

    #[test]
    fn fresher_wins_at_equal_score_and_negative_scores_go_last() {
        let mut old = item(1, 1, 1.0);
        old.age_ms = 10 * 86_400_000;
        let out = rerank(
            vec![old, item(2, 2, 1.0), item(3, 3, -2.0), item(4, 4, -1.0)],
            &rules(),
            true,
            usize::MAX,
            &[],
        );
        let posts: Vec<u64> = out.iter().map(|s| s.post).collect();
        assert_eq!(posts, [2, 1, 4, 3]);
    }

    proptest! {
        #[test]
        fn strict_caps_every_window_and_lenient_keeps_everything(
            raw in proptest::collection::vec((0u64..6, 0.0f64..5.0, 0usize..4), 0..60)
        ) {
            let media = [MediaType::Photo, MediaType::Video, MediaType::Reel, MediaType::Carousel];
            let items: Vec<Scored<()>> = raw
                .iter()
                .enumerate()
                .map(|(i, &(author, score, m))| Scored {
                    media_type: media[m],
                    ..item(i as u64, author, score)
                })
                .collect();
            let r = rules();
            let strict = rerank(items.clone(), &r, true, usize::MAX, &[]);
            for w in strict.windows(r.window) {
                for a in 0..6 {
                    prop_assert!(w.iter().filter(|s| s.author == a).count() <= r.author_cap);
                }
            }
            let mut posts: Vec<u64> = strict.iter().map(|s| s.post).collect();
            posts.sort_unstable();
            posts.dedup();
            prop_assert_eq!(posts.len(), strict.len(), "no item twice");
            let lenient = rerank(items.clone(), &r, false, usize::MAX, &[]);
            let mut all: Vec<u64> = lenient.iter().map(|s| s.post).collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..items.len() as u64).collect::<Vec<_>>());
            // Split in two batches, the second placed after the first: the cap holds across.
            let half = items.len() / 2;
            let first = rerank(items[..half].to_vec(), &r, true, usize::MAX, &[]);
            let seam: Vec<(u64, MediaType)> =
                first.iter().map(|s| (s.author, s.media_type)).collect();
            let second = rerank(items[half..].to_vec(), &r, true, usize::MAX, &seam);
            let joined: Vec<u64> = first.iter().chain(&second).map(|s| s.author).collect();
            for w in joined.windows(r.window) {
                for a in 0..6 {
                    prop_assert!(w.iter().filter(|&&x| x == a).count() <= r.author_cap);
                }
            }
        }
    }
}
