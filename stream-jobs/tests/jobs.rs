//! Engagement, notifications, stories and trending against their oracle: random activity
//! (duplicates, events before the posts they touch, unlikes, comment deletes, post deletes,
//! blocks, mentions of users who sign up later, stories) applied to real Redis through the
//! jobs' scripts in random partition interleavings and batch sizes.

mod support;

use aperture_stream_jobs::oracle::Oracle;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::compare::*;
use support::*;

/// How much of each job's behaviour the random cases reached, so the comparison is known not
/// to be vacuous.
#[derive(Debug, Default)]
struct Coverage {
    likes: usize,
    unliked: usize,
    comments_deleted: usize,
    first_hours: usize,
    affinities: usize,
    batches: usize,
    aggregated: usize,
    mentions: usize,
    story_views: usize,
    close_friends: usize,
    tagged_posts: usize,
    deleted_tagged: usize,
}

impl Coverage {
    fn add(&mut self, oracle: &Oracle, events: &[aperture_schema::Envelope]) {
        use aperture_schema::Event;
        let e = &oracle.engagement;
        self.likes += e.posts.values().map(|p| p.likers.len()).sum::<usize>();
        self.unliked += events
            .iter()
            .filter(|e| matches!(e.event, Event::Unlike(_)))
            .count();
        self.comments_deleted += e
            .posts
            .values()
            .map(|p| p.comments.values().filter(|c| c.is_none()).count())
            .sum::<usize>();
        self.first_hours += e
            .posts
            .values()
            .filter(|p| p.first_hour().is_some_and(|n| n > 0))
            .count();
        self.affinities += e.affinity.len();
        for batches in oracle.notifications.batches.values() {
            self.batches += batches.len();
            self.aggregated += batches.values().filter(|a| a.len() > 1).count();
            self.mentions += batches.keys().filter(|b| b.starts_with("mention:")).count();
        }
        self.story_views += oracle
            .stories
            .viewers
            .values()
            .map(|v| v.len())
            .sum::<usize>();
        self.close_friends += oracle.stories.close_friends.len();
        self.tagged_posts += oracle.trending.posts.len();
        self.deleted_tagged += oracle.trending.posts.values().filter(|p| p.3).count();
    }
}

#[test]
fn every_job_equals_the_oracle_in_random_interleavings() {
    let mut coverage = Coverage::default();
    for case in 0..200u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(50_000 + case);
        let users = rng.random_range(3..=8);
        let n = rng.random_range(40..=220);
        // Recent enough that stories are live while the case runs.
        let t0 = now_ms() - 3 * 3600 * 1000;
        let events = random_activity(&mut rng, users, n, t0);
        let config = test_config("jobs-oracle", PARTITIONS);
        apply_interleaved(&config, &events, &mut rng);
        let mut oracle = Oracle::new(&config);
        oracle.apply_all(&events);
        compare_engagement(&config, &oracle, case);
        compare_notifications(&config, &oracle, 1..=users, case);
        compare_stories(&config, &oracle, 1..=users, case);
        compare_trending(&config, &oracle, case);
        compare_pools(&config, &oracle, case);
        coverage.add(&oracle, &events);
        wipe(&config);
    }
    eprintln!("{coverage:?}");
    let c = &coverage;
    for (what, n) in [
        ("likes", c.likes),
        ("unlikes", c.unliked),
        ("deleted comments", c.comments_deleted),
        ("first-hour interactions", c.first_hours),
        ("affinities", c.affinities),
        ("notification batches", c.batches),
        ("aggregated batches", c.aggregated),
        ("mentions", c.mentions),
        ("story views", c.story_views),
        ("close friends", c.close_friends),
        ("tagged posts", c.tagged_posts),
        ("deleted tagged posts", c.deleted_tagged),
    ] {
        assert!(n >= 10, "the random cases reached only {n} {what}");
    }
}

#[test]
fn a_recipient_keeps_only_the_newest_notification_batches() {
    use std::collections::BTreeMap;

    use aperture_schema::event::{CommentCreated, PostRef};
    use aperture_schema::{Envelope, Event};
    use aperture_stream_jobs::jobs::notifications::Notifications;
    use aperture_stream_jobs::runtime::script::JobScript;

    let mut config = test_config("notify-kept", 1);
    config.notifications.kept = 3;
    let k = config.keyspace();
    let mut con = redis(&config);
    let script = JobScript::new(Box::new(Notifications), &config);
    let (epoch, _) = script.claim(&mut con, &k, 0).unwrap();
    let window = config.notifications.window.as_millis() as i64;
    let t0 = 1_763_856_000_000 - 1_763_856_000_000 % window;
    // User 2 likes five posts of user 1, one window apart (five batches); then user 3 likes the
    // newest post in its window again, and user 4 the oldest kept one.
    let likes = [
        (2, 11, 0),
        (2, 12, 1),
        (2, 13, 2),
        (2, 14, 3),
        (2, 15, 4),
        (3, 15, 4),
        (4, 13, 2),
    ];
    let events: Vec<Envelope> = likes
        .iter()
        .enumerate()
        .map(|(i, &(actor, post, w))| Envelope {
            v: 1,
            event_id: format!("kept{i}"),
            actor_id: actor,
            ts: t0 + w * window + i as i64,
            event: Event::Like(PostRef {
                post_id: post,
                author_id: 1,
            }),
        })
        .collect();
    for (i, e) in events.iter().enumerate() {
        script
            .apply(&mut con, &k, 0, &epoch, &[(i as i64, e)], i as i64 + 1)
            .unwrap();
    }
    let batch_of =
        |kind: &str, post: u64, w: i64| format!("{kind}:{post}:{}", (t0 + w * window) / window);
    let batch = |post: u64, w: i64| batch_of("like", post, w);
    let list = zset(&mut con, &k.notifications(1));
    let want: BTreeMap<String, f64> = [
        (batch(13, 2), (t0 + 2 * window + 6) as f64),
        (batch(14, 3), (t0 + 3 * window + 3) as f64),
        (batch(15, 4), (t0 + 4 * window + 5) as f64),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        list, want,
        "the three newest batches, placed by their latest actor"
    );
    for (post, w) in [(11, 0), (12, 1)] {
        let exists: bool = redis::cmd("EXISTS")
            .arg(k.notification_batch(1, &batch(post, w)))
            .query(&mut con)
            .unwrap();
        assert!(!exists, "the dropped batch {} is deleted", batch(post, w));
    }
    let newest = zset(&mut con, &k.notification_batch(1, &batch(15, 4)));
    assert_eq!(newest.keys().collect::<Vec<_>>(), ["2", "3"]);

    // An actor's earlier event in a batch, arriving after a later one, moves nothing: the
    // actor keeps their latest time and the batch its place.
    let comment = |i: u64, ts: i64| Envelope {
        v: 1,
        event_id: format!("kept-c{i}"),
        actor_id: 5,
        ts,
        event: Event::CommentCreated(CommentCreated {
            comment_id: 900 + i,
            post_id: 14,
            author_id: 1,
            text: "nice".into(),
            hashtags: vec![],
            mentions: vec![],
        }),
    };
    let later = comment(0, t0 + 3 * window + 50);
    let earlier = comment(1, t0 + 3 * window + 10);
    for (i, e) in [later, earlier].iter().enumerate() {
        let offset = events.len() as i64 + i as i64;
        script
            .apply(&mut con, &k, 0, &epoch, &[(offset, e)], offset + 1)
            .unwrap();
    }
    let comments = zset(
        &mut con,
        &k.notification_batch(1, &batch_of("comment", 14, 3)),
    );
    assert_eq!(comments.get("5"), Some(&((t0 + 3 * window + 50) as f64)));
    let list = zset(&mut con, &k.notifications(1));
    assert_eq!(
        list.get(&batch_of("comment", 14, 3)),
        Some(&((t0 + 3 * window + 50) as f64))
    );
    wipe(&config);
}

#[test]
fn a_viewer_s_remembered_ids_stay_within_the_dedupe_window() {
    use aperture_schema::event::{Surface, View};
    use aperture_schema::{Envelope, Event};
    use aperture_stream_jobs::jobs::engagement::Engagement;
    use aperture_stream_jobs::runtime::script::JobScript;

    let config = test_config("seen-window", 1);
    let k = config.keyspace();
    let mut con = redis(&config);
    let script = JobScript::new(Box::new(Engagement), &config);
    let (epoch, _) = script.claim(&mut con, &k, 0).unwrap();
    let window = config.engagement.dedupe_window.as_millis() as i64;
    let t0 = 1_763_856_000_000;
    let view = |id: &str, ts: i64| Envelope {
        v: 1,
        event_id: id.to_owned(),
        actor_id: 2,
        ts,
        event: Event::View(View {
            post_id: 7,
            author_id: 1,
            surface: Surface::Feed,
            dwell_ms: 1000,
            watch_ms: None,
        }),
    };
    // Two batches of the viewer's views, two windows apart, then the second batch redelivered
    // under new offsets (as a producer retry would publish it).
    let batches = [
        vec![view("a", t0), view("b", t0 + 1000)],
        vec![
            view("c", t0 + 2 * window),
            view("d", t0 + 2 * window + 1000),
        ],
        vec![
            view("c", t0 + 2 * window),
            view("d", t0 + 2 * window + 1000),
        ],
    ];
    let mut offset = 0;
    for batch in &batches {
        let events: Vec<(i64, &Envelope)> = batch
            .iter()
            .map(|e| {
                offset += 1;
                (offset - 1, e)
            })
            .collect();
        script
            .apply(&mut con, &k, 0, &epoch, &events, offset)
            .unwrap();
    }
    let seen = zset(&mut con, &k.engagement_seen(2));
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["c", "d"],
        "ids older than the window behind the batch are gone"
    );
    let counts = hash(&mut con, &k.post_counts(7));
    assert_eq!(int(&counts, "views"), 4, "the redelivered views count once");
    wipe(&config);
}
