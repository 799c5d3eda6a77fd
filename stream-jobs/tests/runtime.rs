//! The runtime against the real broker and real Redis: state from the log, offsets stored with
//! it, redelivery skipped, stale owners fenced, poison to the dead-letter topic, replay equal to
//! the live run.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aperture_ingest::kafka;
use aperture_schema::event::*;
use aperture_schema::{Envelope, Event};
use aperture_stream_jobs::jobs;
use aperture_stream_jobs::runtime::Outcome;
use aperture_stream_jobs::runtime::script::{JobScript, apply_all};
use support::*;

const T0: i64 = 1_763_856_000_000;

fn ev(n: u64, actor: u64, ts: i64, event: Event) -> Envelope {
    Envelope {
        v: 1,
        event_id: format!("ev-{n:06}"),
        actor_id: actor,
        ts: T0 + ts,
        event,
    }
}

fn user(n: u64, id: u64, private: bool) -> Envelope {
    ev(
        n,
        id,
        0,
        Event::UserCreated(UserCreated {
            username: format!("user{id}"),
            display_name: None,
            private,
            verified: false,
        }),
    )
}

fn follow(n: u64, a: u64, b: u64, ts: i64) -> Envelope {
    ev(n, a, ts, Event::Follow(Target { target_id: b }))
}

fn post(n: u64, author: u64, post_id: u64, ts: i64) -> Envelope {
    ev(
        n,
        author,
        ts,
        Event::PostCreated(PostCreated {
            post_id,
            media_type: MediaType::Photo,
            media: vec![format!("m/{post_id}.jpg")],
            caption: "hello #world".into(),
            location: None,
            hashtags: vec!["world".into()],
            mentions: vec![],
        }),
    )
}

/// A small social graph: 3 is private, 4 follows and leaves, 5 blocks 1.
fn story() -> Vec<Envelope> {
    vec![
        user(1, 1, false),
        user(2, 2, false),
        user(3, 3, true),
        user(4, 4, false),
        user(5, 5, false),
        follow(10, 1, 2, 10),
        follow(11, 2, 1, 11),
        follow(12, 1, 3, 12),
        ev(
            13,
            3,
            13,
            Event::FollowRequestApproved(FollowRequestApproved { requester_id: 1 }),
        ),
        follow(14, 4, 2, 14),
        follow(15, 5, 2, 15),
        follow(16, 1, 5, 16),
        post(20, 2, 100, 20),
        post(21, 3, 101, 21),
        post(22, 5, 102, 22),
        ev(30, 4, 30, Event::Unfollow(Target { target_id: 2 })),
        ev(31, 5, 31, Event::Block(Target { target_id: 1 })),
        post(32, 2, 103, 32),
        follow(33, 4, 3, 33),
    ]
}

#[test]
fn a_worker_builds_the_graph_and_timelines_from_the_topic() {
    let config = test_config("graph", 3);
    create_topics(&config);
    produce(&config, &story());
    let worker = RunningWorker::start(&config);
    wait_caught_up(&config, &["graph", "fanout"], Duration::from_secs(60));
    worker.stop();

    let k = config.keyspace();
    assert_eq!(zmembers(&config, &k.followers(2)), ["1", "5"]);
    assert_eq!(
        zmembers(&config, &k.following(1)),
        ["2", "3"],
        "approved request; 5 blocked 1"
    );
    assert_eq!(
        zmembers(&config, &k.follow_requests(3)),
        ["4"],
        "private account: a request"
    );
    assert!(
        zmembers(&config, &k.following(4)).is_empty(),
        "unfollowed, and 3 is private"
    );
    assert_eq!(
        zmembers(&config, &k.timeline(1)),
        ["2:100", "3:101", "2:103"]
    );
    assert_eq!(
        zmembers(&config, &k.timeline(4)),
        Vec::<String>::new(),
        "unfollow removed 2's post"
    );
    assert_eq!(zmembers(&config, &k.timeline(5)), ["2:100", "2:103"]);
    let mut con = redis(&config);
    let followers: String = redis::cmd("HGET")
        .arg(k.profile(2))
        .arg("followers")
        .query(&mut con)
        .unwrap();
    assert_eq!(followers, "2");
    let blocks: Vec<String> = redis::cmd("SMEMBERS")
        .arg(k.blocks(5))
        .query(&mut con)
        .unwrap();
    assert_eq!(blocks, ["1"]);
}

#[test]
fn a_redelivered_batch_changes_nothing_and_a_fenced_owner_writes_nothing() {
    let config = test_config("fence", 1);
    let keys = config.keyspace();
    let mut con = redis(&config);
    let events = story();
    let refs: Vec<(i64, &Envelope)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i64, e))
        .collect();
    let scripts: Vec<JobScript> = jobs::all()
        .into_iter()
        .map(|j| JobScript::new(j, &config))
        .collect();

    let (first, second) = refs.split_at(10);
    for s in &scripts {
        let (epoch, from) = s.claim(&mut con, &keys, 0).unwrap();
        assert_eq!(from, 0);
        let (outcome, _) = s.apply(&mut con, &keys, 0, &epoch, first, 10).unwrap();
        assert_eq!(outcome, Outcome::Applied);
    }
    let after_first = dump(&config);
    // Redelivery of the same batch: skipped whole.
    for s in &scripts {
        let (epoch, from) = s.claim(&mut con, &keys, 0).unwrap();
        assert_eq!(from, 10, "resume from the stored offset");
        let (outcome, _) = s.apply(&mut con, &keys, 0, &epoch, first, 10).unwrap();
        assert_eq!(outcome, Outcome::AlreadyApplied);
        // A batch overlapping what was applied applies only the new part.
        let (outcome, _) = s
            .apply(&mut con, &keys, 0, &epoch, &refs[5..12], 12)
            .unwrap();
        assert_eq!(outcome, Outcome::Applied);
    }
    assert_ne!(dump(&config), after_first);
    // A worker that lost the partition (its epoch is no longer current) is refused.
    for s in &scripts {
        let (stale, _) = s.claim(&mut con, &keys, 0).unwrap();
        let (current, _) = s.claim(&mut con, &keys, 0).unwrap();
        let before = dump(&config);
        let (outcome, _) = s
            .apply(&mut con, &keys, 0, &stale, &second[2..], refs.len() as i64)
            .unwrap();
        assert_eq!(outcome, Outcome::Fenced);
        assert_eq!(dump(&config), before, "a fenced write changes nothing");
        let (outcome, _) = s
            .apply(
                &mut con,
                &keys,
                0,
                &current,
                &second[2..],
                refs.len() as i64,
            )
            .unwrap();
        assert_eq!(outcome, Outcome::Applied);
    }
}

#[test]
fn every_job_s_batch_in_one_round_trip_survives_a_script_flush_and_a_resend() {
    let config = test_config("flush", 1);
    let keys = config.keyspace();
    let mut con = redis(&config);
    let events = story();
    let refs: Vec<(i64, &Envelope)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i64, e))
        .collect();
    let next = refs.len() as i64;
    let scripts: Vec<JobScript> = jobs::all()
        .into_iter()
        .map(|j| JobScript::new(j, &config))
        .collect();
    let mut epochs = Vec::new();
    for s in &scripts {
        epochs.push(s.claim(&mut con, &keys, 0).unwrap().0);
    }
    let calls: Vec<_> = scripts
        .iter()
        .zip(&epochs)
        .map(|(s, epoch)| s.call(&keys, 0, epoch, &refs, next, None))
        .collect();
    // As after a Redis restart: the server knows none of the scripts.
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    let outcomes = apply_all(&mut con, &keys, &calls).unwrap();
    assert!(
        outcomes.iter().all(|(o, _)| *o == Outcome::Applied),
        "{outcomes:?}"
    );
    let applied = dump(&config);
    // The same round trip again (a retry after a lost reply) changes nothing.
    let outcomes = apply_all(&mut con, &keys, &calls).unwrap();
    assert!(
        outcomes.iter().all(|(o, _)| *o == Outcome::AlreadyApplied),
        "{outcomes:?}"
    );
    assert_eq!(dump(&config), applied);
    // And it equals the jobs applied one by one.
    let mut one_by_one = config.clone();
    one_by_one.redis.key_prefix = unique("t-flush-single");
    let single = one_by_one.keyspace();
    for s in jobs::all()
        .into_iter()
        .map(|j| JobScript::new(j, &one_by_one))
    {
        let (epoch, _) = s.claim(&mut con, &single, 0).unwrap();
        s.apply(&mut con, &single, 0, &epoch, &refs, next).unwrap();
    }
    let strip = |state: std::collections::BTreeMap<String, String>, prefix: &str| {
        state
            .into_iter()
            .map(|(k, v)| (k.replacen(prefix, "", 1), v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        strip(applied, &config.redis.key_prefix),
        strip(dump(&one_by_one), &one_by_one.redis.key_prefix)
    );
}

#[test]
fn activity_at_time_zero_is_applied_and_leaves_last_active_as_it_was() {
    // ts = 0 is valid (only negative times are refused), and not later than "never active".
    let config = test_config("ts-zero", 1);
    let keys = config.keyspace();
    let mut con = redis(&config);
    let graph = JobScript::new(Box::new(jobs::graph::Graph), &config);
    let (epoch, _) = graph.claim(&mut con, &keys, 0).unwrap();
    let mut at_zero = user(1, 9, false);
    at_zero.ts = 0;
    let later = follow(2, 9, 8, 1000);
    let last_active = |con: &mut redis::Connection| -> Option<i64> {
        redis::cmd("GET")
            .arg(keys.last_active(9))
            .query(con)
            .unwrap()
    };
    let (outcome, _) = graph
        .apply(&mut con, &keys, 0, &epoch, &[(0, &at_zero)], 1)
        .unwrap();
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(last_active(&mut con), None);
    let (outcome, _) = graph
        .apply(&mut con, &keys, 0, &epoch, &[(1, &later)], 2)
        .unwrap();
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(last_active(&mut con), Some(T0 + 1000));
    // An earlier time after a later one puts the later one back.
    let mut earlier = follow(3, 9, 7, 0);
    earlier.ts = T0;
    graph
        .apply(&mut con, &keys, 0, &epoch, &[(2, &earlier)], 3)
        .unwrap();
    assert_eq!(last_active(&mut con), Some(T0 + 1000));
}

#[test]
fn applying_in_any_partition_interleaving_gives_the_same_state() {
    // The same events split over 3 partitions by actor, applied partition after partition in
    // two opposite orders: the state must not depend on it.
    let events = story();
    let mut states = Vec::new();
    for order in [[0u32, 1, 2], [2, 1, 0]] {
        let config = test_config("interleave", 3);
        let keys = config.keyspace();
        let mut con = redis(&config);
        let scripts: Vec<JobScript> = jobs::all()
            .into_iter()
            .map(|j| JobScript::new(j, &config))
            .collect();
        for p in order {
            let mine: Vec<(i64, &Envelope)> = events
                .iter()
                .filter(|e| aperture_schema::topics::partition_for(e.actor_id, 3) == p)
                .enumerate()
                .map(|(i, e)| (i as i64, e))
                .collect();
            for s in &scripts {
                let (epoch, _) = s.claim(&mut con, &keys, p).unwrap();
                s.apply(&mut con, &keys, p, &epoch, &mine, mine.len() as i64)
                    .unwrap();
            }
        }
        states.push(dump(&config));
    }
    assert_eq!(states[0], states[1]);
}

#[test]
fn poison_messages_land_in_the_dead_letter_topic_once_each_and_the_job_goes_on() {
    let config = test_config("poison", 2);
    create_topics(&config);
    let good = story();
    produce(&config, &good[..5]);
    produce_raw(
        &config,
        &[
            ("9".into(), b"not json at all".to_vec()),
            (
                "9".into(),
                br#"{"v":1,"event_id":"p1","type":"poke","actor_id":9,"ts":1}"#.to_vec(),
            ),
            (
                "9".into(),
                br#"{"v":1,"event_id":"p2","type":"follow","actor_id":9,"ts":1,"target_id":9}"#
                    .to_vec(),
            ),
        ],
    );
    produce(&config, &good[5..]);
    let worker = RunningWorker::start(&config);
    wait_caught_up(&config, &["graph", "fanout"], Duration::from_secs(60));
    worker.stop();

    let k = config.keyspace();
    assert_eq!(
        zmembers(&config, &k.followers(2)),
        ["1", "5"],
        "good events around the poison applied"
    );
    let letters = dead_letters(&config);
    let reasons: BTreeSet<(String, i64)> = letters
        .iter()
        .map(|(key, v)| {
            assert_eq!(key.as_deref(), Some(b"9".as_slice()));
            assert!(!v["reason"].as_str().unwrap().is_empty());
            (
                v["rule"].as_str().unwrap().to_owned(),
                v["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        letters.len(),
        3,
        "one dead letter per poison message: {reasons:?}"
    );
    let rules: BTreeSet<&str> = reasons.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(rules, BTreeSet::from(["json", "unknown_type", "not_self"]));
}

/// Every record of the dead-letter topic: key and JSON body.
fn dead_letters(config: &aperture_schema::Config) -> Vec<(Option<Vec<u8>>, serde_json::Value)> {
    let marks = kafka::watermarks(
        &config.kafka,
        &config.kafka.dead_letter_topic,
        Duration::from_secs(10),
    )
    .unwrap();
    let before: Vec<_> = marks
        .iter()
        .map(|w| kafka::Watermarks { high: w.low, ..*w })
        .collect();
    kafka::read_between(
        &config.kafka,
        &config.kafka.dead_letter_topic,
        &before,
        &marks,
        Duration::from_secs(30),
    )
    .unwrap()
    .into_iter()
    .map(|l| (l.key, serde_json::from_slice(&l.payload).unwrap()))
    .collect()
}

#[test]
fn a_post_later_than_the_allowed_lateness_is_a_dead_letter_and_one_within_it_counts() {
    let config = test_config("late", 1);
    let allowed = config.trending.allowed_lateness.as_millis() as i64;
    assert_eq!(
        allowed, 3_600_000,
        "the default lateness this test is written for"
    );
    let minute = 60_000;
    create_topics(&config);
    let events = vec![
        user(1, 1, false),
        post(2, 1, 100, 0),
        // The watermark moves two hours on.
        post(3, 1, 101, 120 * minute),
        // 110 minutes behind it: more than an hour late.
        post(4, 1, 102, 10 * minute),
        // 30 minutes behind it: counted in its bucket.
        post(5, 1, 103, 90 * minute),
    ];
    produce(&config, &events);
    let worker = RunningWorker::start_jobs(&config, jobs::by_names(&["trending".into()]).unwrap());
    wait_caught_up(&config, &["trending"], Duration::from_secs(60));
    worker.stop();

    let letters = dead_letters(&config);
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (_, letter) = &letters[0];
    assert_eq!(letter["rule"], "late");
    assert_eq!(letter["field"], "ts");
    assert_eq!(letter["offset"], 3);
    assert!(
        letter["payload"]
            .as_str()
            .unwrap()
            .contains("\"post_id\":102"),
        "{letter}"
    );
    let mut con = redis(&config);
    let k = config.keyspace();
    let count = |con: &mut redis::Connection, ts: i64| -> Option<i64> {
        let hour = 3_600_000;
        redis::cmd("HGET")
            .arg(k.trend_bucket("1h", (T0 + ts).div_euclid(hour) * hour))
            .arg("world")
            .query(con)
            .unwrap()
    };
    // Hour 0 holds posts 100 only (102 was late); hour 1 holds 103; hour 2 holds 101.
    assert_eq!(count(&mut con, 0), Some(1));
    assert_eq!(count(&mut con, 90 * minute), Some(1));
    assert_eq!(count(&mut con, 120 * minute), Some(1));
}

#[test]
fn replaying_the_topic_into_a_wiped_prefix_gives_the_live_state() {
    let config = test_config("replay", 3);
    create_topics(&config);
    produce(&config, &story());
    let worker = RunningWorker::start(&config);
    wait_caught_up(&config, &["graph", "fanout"], Duration::from_secs(60));
    worker.stop();
    let live = dump(&config);

    let mut con = redis(&config);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", config.redis.key_prefix))
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
    let mut replay = config.clone();
    replay.runtime.group_id = unique("replay-group");
    let worker = RunningWorker::start(&replay);
    wait_caught_up(&replay, &["graph", "fanout"], Duration::from_secs(60));
    worker.stop();
    assert_eq!(dump(&replay), live);
}

/// Applies events in order on one partition through every job's script.
fn apply_in_order(config: &aperture_schema::Config, events: &[Envelope]) {
    let keys = config.keyspace();
    let mut con = redis(config);
    let scripts: Vec<JobScript> = jobs::all()
        .into_iter()
        .map(|j| JobScript::new(j, config))
        .collect();
    let refs: Vec<(i64, &Envelope)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i64, e))
        .collect();
    for s in &scripts {
        let (epoch, from) = s.claim(&mut con, &keys, 0).unwrap();
        let todo: Vec<(i64, &Envelope)> =
            refs.iter().copied().filter(|(o, _)| *o >= from).collect();
        s.apply(&mut con, &keys, 0, &epoch, &todo, refs.len() as i64)
            .unwrap();
    }
}

fn profile_field(config: &aperture_schema::Config, user: u64, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(config.keyspace().profile(user))
        .arg(field)
        .query(&mut redis(config))
        .unwrap()
}

#[test]
fn inactive_followers_are_skipped_and_their_timeline_is_rebuilt_when_they_return() {
    let mut config = test_config("inactive", 1);
    config.fanout.inactive_after = Duration::from_secs(3600);
    let hour = 3_600_000;
    let k = config.keyspace();
    let mut events = vec![user(1, 1, false), user(2, 2, false), user(3, 3, false)];
    events.extend([
        follow(4, 2, 1, 10),
        follow(5, 3, 1, 11),
        post(6, 1, 100, 600_000),
    ]);
    events.push(ev(
        7,
        2,
        3 * hour,
        Event::ProfileView(Target { target_id: 1 }),
    ));
    events.push(post(8, 1, 101, 4 * hour));
    apply_in_order(&config, &events);
    assert_eq!(
        zmembers(&config, &k.timeline(2)),
        ["1:100", "1:101"],
        "active: pushed"
    );
    assert_eq!(
        zmembers(&config, &k.timeline(3)),
        ["1:100"],
        "inactive for 4 h: skipped"
    );
    assert_eq!(profile_field(&config, 3, "stale").as_deref(), Some("1"));

    events.push(ev(
        9,
        3,
        5 * hour,
        Event::ProfileView(Target { target_id: 1 }),
    ));
    apply_in_order(&config, &events);
    assert_eq!(
        zmembers(&config, &k.timeline(3)),
        ["1:100", "1:101"],
        "rebuilt on return"
    );
    assert_eq!(profile_field(&config, 3, "stale"), None);
}

#[test]
fn a_celebrity_near_the_threshold_does_not_flap() {
    let mut config = test_config("celebrity", 1);
    config.fanout.celebrity_threshold = 4;
    config.fanout.celebrity_hysteresis = 0.5; // off only below 2 followers
    let k = config.keyspace();
    let mut events: Vec<Envelope> = (1..=5).map(|u| user(u, u, false)).collect();
    events.extend((2..=5).map(|f| follow(10 + f, f, 1, 10 + f as i64)));
    events.push(post(20, 1, 100, 100));
    apply_in_order(&config, &events);
    assert_eq!(profile_field(&config, 1, "celebrity").as_deref(), Some("1"));
    assert!(
        zmembers(&config, &k.timeline(2)).is_empty(),
        "a celebrity's post is pulled, not pushed"
    );

    for (n, f) in [(30, 5u64), (31, 4)] {
        events.push(ev(
            n,
            f,
            200 + n as i64,
            Event::Unfollow(Target { target_id: 1 }),
        ));
        apply_in_order(&config, &events);
        assert_eq!(
            profile_field(&config, 1, "celebrity").as_deref(),
            Some("1"),
            "still one at {n}"
        );
    }
    events.push(ev(32, 3, 300, Event::Unfollow(Target { target_id: 1 })));
    apply_in_order(&config, &events);
    assert_eq!(
        profile_field(&config, 1, "celebrity").as_deref(),
        Some("0"),
        "below the low mark"
    );
    assert_eq!(
        zmembers(&config, &k.timeline(2)),
        ["1:100"],
        "recent posts pushed once pull stops"
    );
}
