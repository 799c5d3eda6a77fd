//! Topics learned from hashtag co-occurrence: what a post is about, beyond its exact tags.
//!
//! A viewer who liked `#sushidaily` and `#pastalover` likes food, but two posts rarely share an
//! exact tag, so a per-tag preference sees little. Tags used together on posts are about the
//! same thing: [`Topics::learn`] clusters the tags of the training posts by label propagation
//! on their co-occurrence graph (pairs seen on at least two posts), an edge weighted by the pair's positive pointwise mutual
//! information (PMI, `ln(N·n_ab / (n_a·n_b))`: how much more often the two meet than chance
//! would have them). A tag used everywhere (`#love`) meets every cluster about as often as
//! chance says and has no strong edges, so it is left without a topic, as is a tag whose
//! edges spread over many clusters or that forms a cluster of its own. A post's topic is the
//! most frequent topic among its tags.
//!
//! The map is learned from posts created before the training cut only and travels inside the
//! model artifact, so training, evaluation and serving read one mapping.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Share of a tag's edge weight its topic must hold for the tag to keep it.
const MIN_CONCENTRATION: f64 = 0.5;
/// PMI below which a pair is no evidence (three times as often as chance), and the fewest
/// posts a pair must share: one shared post between two rare tags is chance.
const MIN_PMI: f64 = 1.098_612_288_668_109_8;
const MIN_PAIR: usize = 2;
/// Rounds of label propagation at most.
const ROUNDS: usize = 30;

/// Tag → topic number; tags without a topic are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topics {
    pub of_tag: BTreeMap<String, u32>,
    /// Number of topics (numbers are `0..count`).
    pub count: u32,
}

impl Topics {
    /// Learns topics from the hashtag lists of posts. Deterministic: ties go to the smaller
    /// label, tags are visited by frequency then name.
    pub fn learn<'a>(posts: impl IntoIterator<Item = &'a [String]>) -> Topics {
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        let lists: Vec<Vec<&str>> = posts
            .into_iter()
            .map(|tags| {
                let mut t: Vec<&str> = tags.iter().map(String::as_str).collect();
                t.sort_unstable();
                t.dedup();
                t
            })
            .filter(|t| !t.is_empty())
            .collect();
        for t in lists.iter().flatten() {
            let next = index.len();
            index.entry(t).or_insert(next);
        }
        // Dense ids in name order.
        let names: Vec<&str> = index.keys().copied().collect();
        let id: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let n = names.len();
        let mut freq = vec![0usize; n];
        let mut pairs: HashMap<(usize, usize), usize> = HashMap::new();
        for list in &lists {
            let ids: Vec<usize> = list.iter().map(|t| id[t]).collect();
            for (k, &a) in ids.iter().enumerate() {
                freq[a] += 1;
                for &b in &ids[k + 1..] {
                    *pairs.entry((a.min(b), a.max(b))).or_default() += 1;
                }
            }
        }
        let total = lists.len() as f64;
        let mut edges: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let mut sorted: Vec<(&(usize, usize), &usize)> = pairs.iter().collect();
        sorted.sort_unstable();
        for (&(a, b), &count) in sorted {
            let pmi = (total * count as f64 / (freq[a] as f64 * freq[b] as f64)).ln();
            if count >= MIN_PAIR && pmi > MIN_PMI {
                let w = pmi * count as f64;
                edges[a].push((b, w));
                edges[b].push((a, w));
            }
        }

        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| freq[b].cmp(&freq[a]).then(a.cmp(&b)));
        let mut label: Vec<usize> = (0..n).collect();
        let mut votes: BTreeMap<usize, f64> = BTreeMap::new();
        for _ in 0..ROUNDS {
            let mut changed = false;
            for &t in &order {
                votes.clear();
                for &(o, w) in &edges[t] {
                    *votes.entry(label[o]).or_default() += w;
                }
                let Some(best) = votes
                    .iter()
                    .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(l, w)| (*l, *w))
                else {
                    continue;
                };
                let current = votes.get(&label[t]).copied().unwrap_or(0.0);
                if best.1 > current && best.0 != label[t] {
                    label[t] = best.0;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }

        // Keep tags whose edges mostly agree with their topic, topics of two tags or more.
        let keep: Vec<bool> = (0..n)
            .map(|t| {
                let all: f64 = edges[t].iter().map(|e| e.1).sum();
                let agree: f64 = edges[t]
                    .iter()
                    .filter(|e| label[e.0] == label[t])
                    .map(|e| e.1)
                    .sum();
                all > 0.0 && agree / all >= MIN_CONCENTRATION
            })
            .collect();
        let mut size: BTreeMap<usize, usize> = BTreeMap::new();
        for t in (0..n).filter(|&t| keep[t]) {
            *size.entry(label[t]).or_default() += 1;
        }
        let mut number: BTreeMap<usize, u32> = BTreeMap::new();
        for (&l, _) in size.iter().filter(|(_, s)| **s >= 2) {
            let next = number.len() as u32;
            number.insert(l, next);
        }
        let of_tag = (0..n)
            .filter(|&t| keep[t])
            .filter_map(|t| number.get(&label[t]).map(|&k| (names[t].to_string(), k)))
            .collect();
        Topics {
            of_tag,
            count: number.len() as u32,
        }
    }

    /// The most frequent topic among `tags` (ties to the smaller number), if any has one.
    pub fn of_post(&self, tags: &[String]) -> Option<u32> {
        let mut count: BTreeMap<u32, usize> = BTreeMap::new();
        for t in tags {
            if let Some(&k) = self.of_tag.get(t) {
                *count.entry(k).or_default() += 1;
            }
        }
        count
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(k, _)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| (*t).to_string()).collect()
    }

    #[test]
    fn co_used_tags_share_a_topic_and_tags_used_everywhere_have_none() {
        let food = ["sushi", "pasta", "taco", "brunch"];
        let trip = ["beach", "island", "lake", "snow"];
        let mut posts = Vec::new();
        for i in 0..40 {
            let (a, b) = if i % 2 == 0 {
                (&food, &trip)
            } else {
                (&trip, &food)
            };
            posts.push(post(&[a[i % 4], a[(i + 1) % 4], "love"]));
            posts.push(post(&[b[(i + 2) % 4], b[(i + 3) % 4]]));
            posts.push(post(&["love", "me"][..1 + i % 2]));
            // Posts about nothing in particular: with them, a pair that meets on a quarter of
            // a topic's posts is well above chance.
            posts.push(post(&["ootd"]));
        }
        let topics = Topics::learn(posts.iter().map(Vec::as_slice));
        assert_eq!(topics.count, 2, "{topics:?}");
        let of = |t: &str| topics.of_tag.get(t).copied();
        assert!(food.iter().all(|t| of(t) == of("sushi") && of(t).is_some()));
        assert!(trip.iter().all(|t| of(t) == of("beach") && of(t).is_some()));
        assert_ne!(of("sushi"), of("beach"));
        assert_eq!(of("love"), None);
        assert_eq!(
            topics.of_post(&post(&["love", "taco", "pasta", "lake"])),
            of("taco")
        );
        assert_eq!(topics.of_post(&post(&["love"])), None);
        // Deterministic.
        assert_eq!(Topics::learn(posts.iter().map(Vec::as_slice)), topics);
    }
}
