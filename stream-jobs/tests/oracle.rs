//! Randomised event sequences, applied to real Redis through the jobs' scripts in random
//! partition interleavings and batch sizes, compared with the oracle: edges, requests, blocks
//! and timelines must be equal, whatever the interleaving.

mod support;

use std::collections::BTreeSet;

use aperture_schema::Config;
use aperture_stream_jobs::oracle::Oracle;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::compare::hash;
use support::*;

fn ids(strings: Vec<String>) -> BTreeSet<u64> {
    strings.iter().map(|s| s.parse().unwrap()).collect()
}

fn compare(config: &Config, oracle: &Oracle, users: u64, compare_timelines: bool, case: u64) {
    let k = config.keyspace();
    let mut con = redis(config);
    for u in 1..=users {
        assert_eq!(
            ids(zmembers(config, &k.followers(u))),
            oracle.followers(u),
            "case {case}: followers of {u}"
        );
        assert_eq!(
            ids(zmembers(config, &k.following(u))),
            oracle.following(u),
            "case {case}: following of {u}"
        );
        assert_eq!(
            ids(zmembers(config, &k.follow_requests(u))),
            oracle.requests(u),
            "case {case}: requests to {u}"
        );
        // The profile's counts, present exactly when not zero (the API reads a missing one as
        // 0), so the fields do not depend on the interleaving either.
        let profile = hash(&mut con, &k.profile(u));
        let counts = |field: &str| profile.get(field).map(|v| v.parse::<usize>().unwrap());
        let nonzero = |n: usize| (n > 0).then_some(n);
        assert_eq!(
            (counts("followers"), counts("following")),
            (
                nonzero(oracle.followers(u).len()),
                nonzero(oracle.following(u).len())
            ),
            "case {case}: follower and following counts of {u}"
        );
        let blocks: Vec<String> = redis::cmd("SMEMBERS")
            .arg(k.blocks(u))
            .query(&mut con)
            .unwrap();
        let expected: BTreeSet<u64> = oracle
            .blocks
            .iter()
            .filter(|(a, _)| *a == u)
            .map(|(_, b)| *b)
            .collect();
        assert_eq!(ids(blocks), expected, "case {case}: blocks of {u}");
        let blocked_by: Vec<String> = redis::cmd("SMEMBERS")
            .arg(k.blocked_by(u))
            .query(&mut con)
            .unwrap();
        let expected: BTreeSet<u64> = oracle
            .blocks
            .iter()
            .filter(|(_, b)| *b == u)
            .map(|(a, _)| *a)
            .collect();
        assert_eq!(ids(blocked_by), expected, "case {case}: blocked_by of {u}");
        let celebrities: Vec<String> = redis::cmd("SMEMBERS")
            .arg(k.celebrity_followees(u))
            .query(&mut con)
            .unwrap();
        // Whether an author is a celebrity depends on the path under hysteresis; the set must
        // hold exactly the followees whose flag is on, whatever the path.
        let expected: BTreeSet<u64> = oracle
            .following(u)
            .into_iter()
            .filter(|&f| {
                let flag: Option<String> = redis::cmd("HGET")
                    .arg(k.profile(f))
                    .arg("celebrity")
                    .query(&mut con)
                    .unwrap();
                flag.as_deref() == Some("1")
            })
            .collect();
        assert_eq!(
            ids(celebrities),
            expected,
            "case {case}: celebrities {u} follows"
        );
        let recent: BTreeSet<u64> = oracle
            .recent
            .get(&u)
            .into_iter()
            .flatten()
            .map(|(_, p)| *p)
            .collect();
        assert_eq!(
            ids(zmembers(config, &k.recent_posts(u))),
            recent,
            "case {case}: recent posts of {u}"
        );
        if compare_timelines {
            let timeline: BTreeSet<String> = zmembers(config, &k.timeline(u)).into_iter().collect();
            let expected: BTreeSet<String> = oracle
                .timelines
                .get(&u)
                .into_iter()
                .flatten()
                .map(|(_, a, p)| format!("{a}:{p}"))
                .collect();
            assert_eq!(timeline, expected, "case {case}: timeline of {u}");
        }
    }
}

#[test]
fn random_sequences_in_random_interleavings_equal_the_oracle() {
    for case in 0..300u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(case);
        let users = rng.random_range(3..=10);
        let n = rng.random_range(20..=120);
        let events = random_events(&mut rng, users, n);
        let config = test_config("oracle", PARTITIONS);
        apply_interleaved(&config, &events, &mut rng);
        let mut oracle = Oracle::new(&config);
        oracle.apply_all(&events);
        compare(&config, &oracle, users, true, case);
        wipe(&config);
    }
}

#[test]
fn with_celebrities_edges_still_equal_the_oracle() {
    // A threshold of 3 followers (off below 2) makes authors flip between push and pull;
    // which posts are pushed then depends on the path, so only the edges must be equal here
    // (feeds, which merge push and pull, are compared through the API).
    for case in 0..150u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(10_000 + case);
        let users = rng.random_range(4..=9);
        let n = rng.random_range(30..=120);
        let events = random_events(&mut rng, users, n);
        let mut config = test_config("oracle-celeb", PARTITIONS);
        config.fanout.celebrity_threshold = 3;
        config.fanout.celebrity_hysteresis = 0.34;
        apply_interleaved(&config, &events, &mut rng);
        let mut oracle = Oracle::new(&config);
        oracle.apply_all(&events);
        compare(&config, &oracle, users, false, case);
        wipe(&config);
    }
}
