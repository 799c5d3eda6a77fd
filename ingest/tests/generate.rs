//! The synthetic workload: deterministic, valid, causal and shaped like a real app's traffic.
//!
//! Pure tests, no broker. Workloads are generated once per size and shared between tests.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use aperture_ingest::generate::{Spec, Summary, Workload, generate};
use aperture_schema::event::MediaType;
use aperture_schema::{Envelope, Event, EventKind};

const HOUR: i64 = 3_600_000;

/// The default size the issue asks for: 10,000 accounts over one day.
fn full_spec() -> Spec {
    Spec {
        seed: 1,
        users: 10_000,
        days: 1.0,
        ..Spec::default()
    }
}

fn full() -> &'static Workload {
    static W: OnceLock<Workload> = OnceLock::new();
    W.get_or_init(|| generate(&full_spec()))
}

/// Large enough to plant celebrities above a threshold of 1,000.
fn mid_spec() -> Spec {
    Spec {
        seed: 7,
        users: 3_000,
        celebrity_threshold: 1_000,
        celebrities: 3,
        ..Spec::default()
    }
}

fn mid() -> &'static Workload {
    static W: OnceLock<Workload> = OnceLock::new();
    W.get_or_init(|| generate(&mid_spec()))
}

fn ndjson(w: &Workload) -> Vec<u8> {
    let mut out = Vec::new();
    for e in &w.events {
        out.extend_from_slice(&e.to_json());
        out.push(b'\n');
    }
    out
}

#[test]
fn same_seed_gives_byte_identical_output() {
    let spec = Spec {
        seed: 42,
        users: 1_500,
        ..Spec::default()
    };
    let a = ndjson(&generate(&spec));
    let b = ndjson(&generate(&spec));
    assert!(!a.is_empty());
    assert!(a == b, "two runs of the same spec differ");

    let other = ndjson(&generate(&Spec { seed: 43, ..spec }));
    assert!(a != other, "a different seed gave the same output");
}

#[test]
fn every_generated_event_is_valid_and_in_event_time_order() {
    for (w, spec) in [(full(), full_spec()), (mid(), mid_spec())] {
        let mut ids = HashSet::new();
        for e in &w.events {
            if let Err(err) = aperture_schema::validate::check(e) {
                panic!(
                    "invalid event {}: {err}",
                    String::from_utf8_lossy(&e.to_json())
                );
            }
            assert!(ids.insert(e.event_id.as_str()), "duplicate {}", e.event_id);
            assert!(e.ts >= spec.start_ms, "{} before the start", e.event_id);
            assert!(e.ts <= spec.end_ms() + HOUR, "{} past the end", e.event_id);
        }
        for pair in w.events.windows(2) {
            assert!(
                pair[0].ts <= pair[1].ts,
                "{} out of order",
                pair[1].event_id
            );
            // Ties are broken by event_id, so the id order must agree with the list order.
            assert!(pair[0].event_id < pair[1].event_id);
        }
        // What the topic carries must decode back to the same event.
        for e in w.events.iter().step_by(97) {
            let back = aperture_schema::decode(&e.to_json(), aperture_schema::Origin::Topic)
                .expect("a generated event decodes");
            assert_eq!(&back, e);
        }
    }
}

/// Replays the events in order and checks every reference against what came before.
fn assert_causal(w: &Workload) {
    let mut users: HashMap<u64, bool> = HashMap::new(); // id -> private now
    let mut usernames = HashSet::new();
    let mut posts: HashMap<u64, (u64, i64)> = HashMap::new(); // post -> (author, ts)
    let mut deleted: HashMap<u64, i64> = HashMap::new();
    let mut stories: HashMap<u64, u64> = HashMap::new();
    let mut comments: HashMap<u64, (u64, u64)> = HashMap::new(); // comment -> (post, author)
    let mut liked: HashSet<(u64, u64)> = HashSet::new();
    let mut saved: HashSet<(u64, u64)> = HashSet::new();
    let mut pending: HashSet<(u64, u64)> = HashSet::new();
    let mut follows: HashSet<(u64, u64)> = HashSet::new();
    let mut viewed: HashSet<(u64, u64)> = HashSet::new();
    let mut after_delete = 0;

    let post_of = |posts: &HashMap<u64, (u64, i64)>, e: &Envelope, post: u64, author: u64| {
        let &(real, _) = posts
            .get(&post)
            .unwrap_or_else(|| panic!("{} refers to post {post} before it exists", e.event_id));
        assert_eq!(real, author, "{} names the wrong author", e.event_id);
    };

    for e in &w.events {
        let actor = e.actor_id;
        if let Event::UserCreated(u) = &e.event {
            assert!(
                users.insert(actor, u.private).is_none(),
                "user {actor} twice"
            );
            assert!(
                usernames.insert(u.username.clone()),
                "username {} twice",
                u.username
            );
            continue;
        }
        assert!(users.contains_key(&actor), "{}: unknown actor", e.event_id);
        if let Some(post) = e.event.post_id()
            && !matches!(e.event, Event::PostCreated(_) | Event::PostDeleted(_))
            && deleted.contains_key(&post)
        {
            after_delete += 1;
        }
        match &e.event {
            Event::UserUpdated(u) => {
                if let Some(p) = u.private {
                    users.insert(actor, p);
                }
            }
            Event::Follow(t) => {
                assert!(users.contains_key(&t.target_id));
                if users[&t.target_id] {
                    pending.insert((actor, t.target_id));
                } else {
                    follows.insert((actor, t.target_id));
                }
            }
            Event::FollowRequestApproved(a) => {
                assert!(
                    pending.remove(&(a.requester_id, actor)),
                    "{}: approval without a pending request",
                    e.event_id
                );
                follows.insert((a.requester_id, actor));
            }
            Event::Unfollow(t) => {
                assert!(
                    follows.remove(&(actor, t.target_id)) || pending.remove(&(actor, t.target_id)),
                    "{}: unfollow without a follow",
                    e.event_id
                );
            }
            Event::Block(t)
            | Event::Unblock(t)
            | Event::CloseFriendAdded(t)
            | Event::CloseFriendRemoved(t)
            | Event::ProfileView(t) => {
                assert!(users.contains_key(&t.target_id), "{}", e.event_id);
            }
            Event::PostCreated(p) => {
                assert!(
                    posts.insert(p.post_id, (actor, e.ts)).is_none(),
                    "post id reused"
                );
                let x = aperture_schema::extract::extract(&p.caption);
                assert_eq!(x.hashtags, p.hashtags);
                assert_eq!(x.mentions, p.mentions);
                for m in &p.mentions {
                    assert!(
                        usernames.contains(m),
                        "{}: mentions unknown @{m}",
                        e.event_id
                    );
                }
            }
            Event::PostDeleted(d) => {
                post_of(&posts, e, d.post_id, actor);
                assert!(deleted.insert(d.post_id, e.ts).is_none(), "deleted twice");
            }
            Event::StoryCreated(s) => {
                assert!(
                    stories.insert(s.story_id, actor).is_none(),
                    "story id reused"
                );
            }
            Event::StoryViewed(s) => {
                assert_eq!(
                    stories.get(&s.story_id),
                    Some(&s.author_id),
                    "{}",
                    e.event_id
                );
            }
            Event::View(v) => {
                post_of(&posts, e, v.post_id, v.author_id);
                viewed.insert((actor, v.post_id));
            }
            Event::Like(r) => {
                post_of(&posts, e, r.post_id, r.author_id);
                assert!(
                    viewed.contains(&(actor, r.post_id)),
                    "{}: like unseen",
                    e.event_id
                );
                assert!(
                    liked.insert((actor, r.post_id)),
                    "{}: liked twice",
                    e.event_id
                );
            }
            Event::Unlike(r) => {
                post_of(&posts, e, r.post_id, r.author_id);
                assert!(
                    liked.remove(&(actor, r.post_id)),
                    "{}: unlike first",
                    e.event_id
                );
            }
            Event::Save(r) => {
                post_of(&posts, e, r.post_id, r.author_id);
                saved.insert((actor, r.post_id));
            }
            Event::Unsave(r) => {
                post_of(&posts, e, r.post_id, r.author_id);
                assert!(
                    saved.remove(&(actor, r.post_id)),
                    "{}: unsave first",
                    e.event_id
                );
            }
            Event::Share(s) => {
                post_of(&posts, e, s.post_id, s.author_id);
                if let Some(to) = s.to_id {
                    assert!(users.contains_key(&to));
                }
            }
            Event::Hide(h) => post_of(&posts, e, h.post_id, h.author_id),
            Event::Report(r) => post_of(&posts, e, r.post_id, r.author_id),
            Event::CommentCreated(c) => {
                post_of(&posts, e, c.post_id, c.author_id);
                let fresh = comments.insert(c.comment_id, (c.post_id, c.author_id));
                assert!(fresh.is_none(), "comment id reused");
                let x = aperture_schema::extract::extract(&c.text);
                assert_eq!(x.hashtags, c.hashtags);
                assert_eq!(x.mentions, c.mentions);
            }
            Event::CommentDeleted(c) => {
                assert_eq!(
                    comments.get(&c.comment_id),
                    Some(&(c.post_id, c.author_id)),
                    "{}: deletes a comment that does not exist yet",
                    e.event_id
                );
            }
            Event::UserCreated(_) => unreachable!("handled above"),
        }
    }
    assert!(
        after_delete > 0,
        "some engagement should land after a delete"
    );
}

#[test]
fn references_are_causal() {
    assert_causal(mid());
    assert_causal(full());
}

#[test]
fn follower_counts_are_heavy_tailed() {
    for (w, spec) in [(full(), full_spec()), (mid(), mid_spec())] {
        let s = Summary::of(w, &spec);
        assert!(
            s.top_percent_share >= 0.20,
            "top 1% hold only {:.3} of follows",
            s.top_percent_share
        );
        assert!(
            s.followers.max >= 20 * s.followers.p50.max(1),
            "max {} is not far above the median {}",
            s.followers.max,
            s.followers.p50
        );
        assert!(s.followers.p99 > 3 * s.followers.p50.max(1));
        // Roughly 30 follows per account, not millions.
        let per_user = s.follow_events as f64 / s.users as f64;
        assert!(
            (20.0..=45.0).contains(&per_user),
            "{per_user} follows per account"
        );
    }
}

#[test]
fn celebrities_are_planted_above_the_threshold() {
    let spec = mid_spec();
    let w = mid();
    let s = Summary::of(w, &spec);
    assert!(
        s.celebrities_above_threshold >= 3,
        "only {} accounts above {}",
        s.celebrities_above_threshold,
        spec.celebrity_threshold
    );
    assert_eq!(w.celebrities.len(), 3);

    // When the population cannot reach the threshold, the celebrities are still the biggest.
    let spec = full_spec();
    let s = Summary::of(full(), &spec);
    assert_eq!(s.celebrities_above_threshold, 0);
    assert!(s.followers.max as f64 >= 0.7 * spec.users as f64);
}

#[test]
fn proportions_match_public_figures() {
    let spec = full_spec();
    let w = full();
    let s = Summary::of(w, &spec);
    for kind in EventKind::ALL {
        assert!(s.by_kind[kind] > 0, "no {kind} event in a 10k-account day");
    }
    assert!(
        (25.0..=90.0).contains(&s.likes_per_post),
        "{} likes per post",
        s.likes_per_post
    );
    assert!(
        (0.5..=3.0).contains(&s.comments_per_post),
        "{} comments per post",
        s.comments_per_post
    );
    assert!(s.views_per_post >= 2.0 * s.likes_per_post);
    for (media, count) in &s.media_mix {
        assert!(*count > 0, "no {} post", media.as_str());
    }
    let photos = s.media_mix[0].1 as f64 / s.posts as f64;
    assert_eq!(s.media_mix[0].0, MediaType::Photo);
    assert!(
        (0.4..=0.7).contains(&photos),
        "{photos} of posts are photos"
    );
    let private = s.private_users as f64 / s.users as f64;
    assert!(
        (0.05..=0.2).contains(&private),
        "{private} of accounts are private"
    );
    let posts_per_user = s.posts as f64 / s.users as f64;
    assert!(
        (0.15..=0.6).contains(&posts_per_user),
        "{posts_per_user} posts per account"
    );
    // Rare things stay rare.
    assert!(s.by_kind[&EventKind::Unlike] * 10 < s.by_kind[&EventKind::Like]);
    assert!(s.by_kind[&EventKind::Save] * 5 < s.by_kind[&EventKind::Like]);
    assert!(s.by_kind[&EventKind::Report] < s.by_kind[&EventKind::Hide]);
    assert!(s.deleted_posts * 20 < s.posts);

    // Likes are heavy tailed across posts too: the most liked post is far above the mean.
    let mut likes: HashMap<u64, u64> = HashMap::new();
    for e in &w.events {
        if let Event::Like(r) = &e.event {
            *likes.entry(r.post_id).or_insert(0) += 1;
        }
    }
    let top = likes.values().copied().max().unwrap_or(0);
    assert!(
        top as f64 > 10.0 * s.likes_per_post,
        "top post has only {top} likes"
    );

    // Stories: a minority posts them, 3–5 a day each.
    let mut per_author: BTreeMap<u64, u64> = BTreeMap::new();
    for e in &w.events {
        if let Event::StoryCreated(_) = e.event {
            *per_author.entry(e.actor_id).or_insert(0) += 1;
        }
    }
    let share = per_author.len() as f64 / s.users as f64;
    assert!(
        (0.15..=0.35).contains(&share),
        "{share} of accounts post stories"
    );
    assert!(per_author.values().all(|c| (3..=5).contains(c)));

    // The summary prints every line it promises.
    let text = s.to_string();
    assert!(text.contains("followers per account"));
    assert!(text.contains(&format!("#{}", w.burst_tags[0])));
}

#[test]
fn bursty_tags_burst_and_steady_tags_do_not() {
    for w in [full(), mid()] {
        assert!(!w.burst_tags.is_empty());
        let mut times: HashMap<&str, Vec<i64>> = HashMap::new();
        let mut authors: HashMap<&str, BTreeSet<u64>> = HashMap::new();
        for e in &w.events {
            if let Event::PostCreated(p) = &e.event {
                for tag in &p.hashtags {
                    times.entry(tag.as_str()).or_default().push(e.ts);
                    authors.entry(tag.as_str()).or_default().insert(e.actor_id);
                }
            }
        }
        for burst in &w.bursts {
            let tag = burst.tag.as_str();
            let ts = &times[tag];
            let (lo, hi) = (ts.iter().min().unwrap(), ts.iter().max().unwrap());
            assert!(hi - lo <= HOUR, "#{tag} spans {} ms", hi - lo);
            assert!(*lo >= burst.start_ms && *hi <= burst.end_ms);
            assert!(ts.len() >= 50, "#{tag} used only {} times", ts.len());
            assert!(
                authors[tag].len() >= 50,
                "#{tag} by only {} accounts",
                authors[tag].len()
            );
            // Within its hour the burst tag outpaces the steady tag.
            let steady_in_window = times[w.steady_tag.as_str()]
                .iter()
                .filter(|t| (burst.start_ms..=burst.end_ms).contains(t))
                .count();
            assert!(ts.len() > 2 * steady_in_window);
        }
        // The steady tag is used all day: in every one of six four-hour slices, at a similar
        // rate, by many accounts.
        let steady = &times[w.steady_tag.as_str()];
        let start = w.events[0].ts;
        let mut slices = [0usize; 6];
        for t in steady {
            let k = ((t - start) / (4 * HOUR)).clamp(0, 5) as usize;
            slices[k] += 1;
        }
        let (min, max) = (slices.iter().min().unwrap(), slices.iter().max().unwrap());
        assert!(
            *min > 0 && *max <= 3 * *min,
            "steady tag by slice: {slices:?}"
        );
        assert!(authors[w.steady_tag.as_str()].len() >= 100);
        // The steady tag is the head of a Zipf vocabulary: the most used tag.
        let most = times
            .iter()
            .max_by_key(|(t, v)| (v.len(), std::cmp::Reverse(**t)))
            .unwrap();
        assert_eq!(*most.0, w.steady_tag.as_str());
    }
}

#[test]
fn tiny_and_odd_specs_still_give_valid_events() {
    let specs = [
        Spec {
            users: 0,
            ..Spec::default()
        },
        Spec {
            users: 1,
            ..Spec::default()
        },
        Spec {
            users: 2,
            ..Spec::default()
        },
        Spec {
            users: 12,
            celebrities: 50,
            bursts: 9,
            ..Spec::default()
        },
        Spec {
            users: 300,
            days: 0.01,
            ..Spec::default()
        },
        Spec {
            users: 300,
            days: 3.5,
            celebrity_threshold: 10,
            ..Spec::default()
        },
        Spec {
            users: 200,
            follows_per_user: 0.0,
            posts_per_user_per_day: 0.0,
            story_poster_fraction: 0.0,
            bursts: 0,
            ..Spec::default()
        },
        Spec {
            users: 200,
            private_fraction: 1.0,
            ..Spec::default()
        },
    ];
    for spec in specs {
        let w = generate(&spec);
        let created = w
            .events
            .iter()
            .filter(|e| e.kind() == EventKind::UserCreated)
            .count();
        assert_eq!(created, spec.users as usize, "{spec:?}");
        for e in &w.events {
            assert!(
                aperture_schema::validate::check(e).is_ok(),
                "{spec:?}: {e:?}"
            );
            assert!(
                e.ts >= spec.start_ms && e.ts <= spec.end_ms() + HOUR,
                "{spec:?}: {e:?}"
            );
        }
        assert!(w.events.windows(2).all(|p| p[0].ts <= p[1].ts));
        assert_eq!(w.burst_tags.len(), spec.bursts as usize);
        // The summary copes with whatever came out.
        let _ = Summary::of(&w, &spec).to_string();
    }
}

#[test]
fn every_view_has_its_truth_and_outcomes_follow_it() {
    use aperture_schema::truth::LABEL_WINDOW_MS;
    let w = mid();
    let views: Vec<&Envelope> = w
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::View(_)))
        .collect();
    assert_eq!(views.len(), w.impressions.len(), "one truth per view");
    let mut index: HashMap<(u64, u64), usize> = HashMap::new();
    for (k, (view, truth)) in views.iter().zip(&w.impressions).enumerate() {
        let Event::View(v) = &view.event else {
            unreachable!()
        };
        assert_eq!(truth.event_id, view.event_id);
        assert_eq!(
            (truth.viewer_id, truth.post_id, truth.ts),
            (view.actor_id, v.post_id, view.ts)
        );
        let p = truth.p;
        for x in [p.like, p.comment, p.share, p.save, p.negative] {
            assert!(x > 0.0 && x < 1.0, "{}: {p:?}", truth.event_id);
        }
        assert_eq!(p.watch_ms.is_some(), v.watch_ms.is_some());
        // Each account is shown a post once.
        assert!(index.insert((view.actor_id, v.post_id), k).is_none());
    }
    // Every like of a viewed post comes inside the label window of its view; bucketed by
    // the true probability, the observed like rate rises with it and matches it.
    let mut liked = vec![false; views.len()];
    for e in &w.events {
        if let Event::Like(r) = &e.event
            && let Some(&k) = index.get(&(e.actor_id, r.post_id))
        {
            let gap = e.ts - views[k].ts;
            assert!(
                (0..LABEL_WINDOW_MS).contains(&gap),
                "like {gap} ms after its view"
            );
            liked[k] = true;
        }
    }
    let mut buckets = [(0.0f64, 0usize, 0usize); 5];
    for (t, &l) in w.impressions.iter().zip(&liked) {
        let b = ((t.p.like * 5.0) as usize).min(4);
        buckets[b].0 += t.p.like;
        buckets[b].1 += 1;
        buckets[b].2 += usize::from(l);
    }
    let mut last = -1.0;
    for (sum, n, hits) in buckets.iter().filter(|b| b.1 >= 500) {
        let (expected, observed) = (sum / *n as f64, *hits as f64 / *n as f64);
        assert!(
            (expected - observed).abs() < 0.03,
            "expected {expected:.3}, observed {observed:.3} over {n}"
        );
        assert!(observed > last);
        last = observed;
    }
    let spread = buckets.iter().filter(|b| b.1 >= 500).count();
    assert!(spread >= 3, "the truth hardly varies: {buckets:?}");
}
