//! Shared by the stream-job tests: configuration with a topic, group and key prefix of the
//! test's own (real broker, real Redis, endpoints from the environment), producing events,
//! running workers in threads, waiting for catch-up, and dumping a prefix's Redis state.

#![allow(dead_code)]

pub mod compare;

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aperture_ingest::generate::sink;
use aperture_ingest::kafka;
use aperture_schema::Event;
use aperture_schema::event::*;
use aperture_schema::topics::partition_for;
use aperture_schema::{Config, Envelope};
use aperture_stream_jobs::jobs;
use aperture_stream_jobs::runtime;
use aperture_stream_jobs::runtime::script::{JobScript, Lane};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio_util::sync::CancellationToken;

pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{nanos}")
}

pub fn test_config(name: &str, partitions: u32) -> Config {
    let mut c = Config::load(None).expect("test configuration is valid");
    let id = unique(name);
    c.kafka.events_topic = format!("test.{id}");
    c.kafka.dead_letter_topic = format!("test.{id}.dlq");
    c.kafka.partitions = partitions;
    c.runtime.group_id = format!("test-{id}");
    c.redis.key_prefix = format!("t-{id}");
    c
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn create_topics(config: &Config) {
    block_on(kafka::ensure_topics(config)).expect("topics can be created");
}

/// Produces events keyed by actor, in the given order, and waits for every acknowledgement.
pub fn produce(config: &Config, events: &[Envelope]) {
    let report = block_on(sink::to_kafka(
        config,
        events,
        &indicatif::ProgressBar::hidden(),
    ))
    .unwrap();
    assert_eq!(report.accepted as usize, events.len());
}

/// Produces raw payloads (poison included) with the given keys.
pub fn produce_raw(config: &Config, records: &[(String, Vec<u8>)]) {
    let producer: BaseProducer = kafka::producer_config(&config.kafka).create().unwrap();
    for (key, payload) in records {
        producer
            .send(
                BaseRecord::to(&config.kafka.events_topic)
                    .key(key)
                    .payload(payload),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

pub fn redis(config: &Config) -> redis::Connection {
    redis::Client::open(config.redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// A connection to the configuration's Redis: one server, or a cluster (commands routed by
/// key).
pub fn redis_any(config: &Config) -> Box<dyn redis::ConnectionLike> {
    if config.redis.cluster {
        Box::new(
            redis::cluster::ClusterClient::new(config.redis.seeds())
                .unwrap()
                .get_connection()
                .unwrap(),
        )
    } else {
        Box::new(redis(config))
    }
}

/// A worker running in a thread of its own.
pub struct RunningWorker {
    pub token: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl RunningWorker {
    pub fn start(config: &Config) -> RunningWorker {
        Self::start_jobs(config, jobs::all())
    }

    pub fn start_jobs(config: &Config, jobs: Vec<Box<dyn jobs::Job>>) -> RunningWorker {
        let token = CancellationToken::new();
        let config = config.clone();
        let t = token.clone();
        let thread = std::thread::spawn(move || runtime::run(&config, jobs, t).unwrap());
        RunningWorker {
            token,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.token.cancel();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Waits until every job has applied every partition up to its high watermark.
pub fn wait_caught_up(config: &Config, job_names: &[&str], timeout: Duration) {
    let marks = kafka::watermarks(
        &config.kafka,
        &config.kafka.events_topic,
        Duration::from_secs(10),
    )
    .unwrap();
    let keys = config.keyspace();
    let mut con = redis_any(config);
    let deadline = Instant::now() + timeout;
    loop {
        let behind: Vec<String> = job_names
            .iter()
            .flat_map(|job| marks.iter().map(move |w| (job, w)))
            .filter_map(|(job, w)| {
                let applied: Option<i64> = redis::cmd("GET")
                    .arg(keys.job_offset(job, w.partition as u32))
                    .query(&mut *con)
                    .unwrap();
                (applied.unwrap_or(0) < w.high)
                    .then(|| format!("{job}/{}: {:?} < {}", w.partition, applied, w.high))
            })
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up after {timeout:?}: {behind:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every key of the prefix but the runtime's own (offsets, epochs), with its content in a
/// canonical text form, for comparing states.
pub fn dump(config: &Config) -> BTreeMap<String, String> {
    let mut con = redis(config);
    let prefix = &config.redis.key_prefix;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut con)
        .unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        // The runtime's own: partition checkpoints, leases, and the slots' applied records
        // (with their outboxes).
        if key.contains(":{j:") || key.contains(":{r:") || key.ends_with(":applied") {
            continue;
        }
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).unwrap();
        let value = match kind.as_str() {
            "string" => {
                let bytes: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
                if bytes.starts_with(b"HYLL") {
                    // A HyperLogLog: its encoding may differ between equal sets, its count not.
                    let count: u64 = redis::cmd("PFCOUNT").arg(&key).query(&mut con).unwrap();
                    format!("hll:{count}")
                } else {
                    String::from_utf8(bytes).expect("string values are UTF-8")
                }
            }
            "hash" => {
                let map: BTreeMap<String, String> =
                    redis::cmd("HGETALL").arg(&key).query(&mut con).unwrap();
                format!("{map:?}")
            }
            "set" => {
                let mut members: Vec<String> =
                    redis::cmd("SMEMBERS").arg(&key).query(&mut con).unwrap();
                members.sort();
                format!("{members:?}")
            }
            "zset" => {
                let mut pairs: Vec<(String, String)> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut con)
                    .unwrap();
                pairs.sort();
                format!("{pairs:?}")
            }
            other => format!("<{other}>"),
        };
        out.insert(key.strip_prefix(prefix.as_str()).unwrap().to_owned(), value);
    }
    out
}

/// Deletes every key of the test's prefix.
pub fn wipe(config: &Config) {
    try_wipe(config).expect("the test's keys can be deleted");
}

fn try_wipe(config: &Config) -> redis::RedisResult<()> {
    let mut con = redis_any(config);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", config.redis.key_prefix))
        .query(&mut *con)?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL").arg(chunk).query::<()>(&mut *con)?;
    }
    Ok(())
}

/// [`wipe`]s the test's prefix when dropped, so its keys go even when the test fails.
pub struct WipeOnDrop<'a>(pub &'a Config);

impl Drop for WipeOnDrop<'_> {
    fn drop(&mut self) {
        // Errors are dropped: a panic here, while a failed test unwinds, would abort the run.
        let _ = try_wipe(self.0);
    }
}

pub fn zmembers(config: &Config, key: &str) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(&mut redis(config))
        .unwrap()
}

const T0: i64 = 1_763_856_000_000;
/// Partitions the interleaving tests split events over.
pub const PARTITIONS: u32 = 3;

/// A random but valid sequence in event-time order, duplicates included.
pub fn random_events(rng: &mut ChaCha8Rng, users: u64, n: usize) -> Vec<Envelope> {
    let mut events: Vec<Envelope> = Vec::new();
    let mut ts = T0;
    let mut next_post = 1000u64;
    let mut posts: Vec<(u64, u64)> = Vec::new();
    let mut seq = 0u64;
    let mut mk = |actor: u64, ts: i64, event: Event| {
        seq += 1;
        Envelope {
            v: 1,
            event_id: format!("r{seq:05}"),
            actor_id: actor,
            ts,
            event,
        }
    };
    for u in 1..=users {
        ts += 1;
        events.push(mk(
            u,
            ts,
            Event::UserCreated(UserCreated {
                username: format!("u{u}"),
                display_name: None,
                private: rng.random_bool(0.3),
                verified: false,
            }),
        ));
    }
    while events.len() < n {
        // Equal times happen: ties are broken by event id.
        ts += rng.random_range(0..3);
        let a = rng.random_range(1..=users);
        let mut b = rng.random_range(1..=users);
        if b == a {
            b = a % users + 1;
        }
        let event = match rng.random_range(0..100) {
            0..=34 => Event::Follow(Target { target_id: b }),
            35..=44 => Event::Unfollow(Target { target_id: b }),
            45..=56 => Event::FollowRequestApproved(FollowRequestApproved { requester_id: b }),
            57..=61 => Event::Block(Target { target_id: b }),
            62..=65 => Event::Unblock(Target { target_id: b }),
            66..=69 => Event::UserUpdated(UserUpdated {
                display_name: None,
                private: Some(rng.random_bool(0.5)),
                verified: None,
            }),
            70..=87 => {
                next_post += 1;
                posts.push((a, next_post));
                Event::PostCreated(PostCreated {
                    post_id: next_post,
                    media_type: MediaType::Photo,
                    media: vec!["m".into()],
                    caption: String::new(),
                    location: None,
                    hashtags: vec![],
                    mentions: vec![],
                })
            }
            88..=93 if !posts.is_empty() => {
                // Mostly the actor's own post; sometimes someone else's, which changes nothing.
                let (author, post) = posts[rng.random_range(0..posts.len())];
                let actor = if rng.random_bool(0.8) { author } else { a };
                events.push(mk(
                    actor,
                    ts,
                    Event::PostDeleted(PostDeleted { post_id: post }),
                ));
                continue;
            }
            _ if !events.is_empty() => {
                // A duplicate delivery of an earlier event of this actor, same id and time,
                // arriving now.
                let earlier: Vec<&Envelope> = events.iter().filter(|e| e.actor_id == a).collect();
                if let Some(e) = earlier.last() {
                    let dup = (*e).clone();
                    events.push(dup);
                }
                continue;
            }
            _ => continue,
        };
        events.push(mk(a, ts, event));
    }
    events
}

/// A random but valid sequence of every kind of activity in event-time order from `t0`:
/// users (one created last, so mentions of them wait), follows, blocks, close friends, posts
/// with hashtags and mentions, likes and unlikes, saves, comments and their deletes (by the
/// commenter, the post's author or someone else), shares, views, hides, reports, profile
/// views, stories and their views; duplicates included. Engagement events name posts that may
/// not exist yet in another partition's order.
pub fn random_activity(rng: &mut ChaCha8Rng, users: u64, n: usize, t0: i64) -> Vec<Envelope> {
    let tags = ["sunset", "love", "food", "travel", "cats"];
    let mut events: Vec<Envelope> = Vec::new();
    let mut ts = t0;
    let mut seq = 0u64;
    let mut next_id = 5000u64;
    let mut posts: Vec<(u64, u64)> = Vec::new();
    let mut comments: Vec<(u64, u64, u64, u64)> = Vec::new();
    let mut stories: Vec<(u64, u64)> = Vec::new();
    let mut mk = |actor: u64, ts: i64, event: Event| {
        seq += 1;
        Envelope {
            v: 1,
            event_id: format!("a{seq:05}"),
            actor_id: actor,
            ts,
            event,
        }
    };
    // The last user signs up at the end: mentions of them are parked until then.
    for u in 1..users {
        ts += 1;
        events.push(mk(
            u,
            ts,
            Event::UserCreated(UserCreated {
                username: format!("user{u}"),
                display_name: None,
                private: rng.random_bool(0.2),
                verified: false,
            }),
        ));
    }
    while events.len() < n {
        // Sometimes a second or several minutes pass, so windows and first hours end.
        ts += match rng.random_range(0..10) {
            0 => rng.random_range(60_000..1_200_000),
            _ => rng.random_range(0..4_000),
        };
        let a = rng.random_range(1..users);
        let mut b = rng.random_range(1..users);
        if b == a {
            b = a % (users - 1) + 1;
        }
        let pick = |rng: &mut ChaCha8Rng, posts: &[(u64, u64)]| {
            if posts.is_empty() {
                None
            } else {
                Some(posts[rng.random_range(0..posts.len())])
            }
        };
        let event = match rng.random_range(0..100) {
            0..=9 => Event::Follow(Target { target_id: b }),
            10..=11 => Event::Unfollow(Target { target_id: b }),
            12..=13 => Event::FollowRequestApproved(FollowRequestApproved { requester_id: b }),
            14 => Event::Block(Target { target_id: b }),
            15 => Event::CloseFriendAdded(Target { target_id: b }),
            16 => Event::CloseFriendRemoved(Target { target_id: b }),
            17..=26 => {
                next_id += 1;
                posts.push((a, next_id));
                let mut caption = String::new();
                let mut hashtags = Vec::new();
                for tag in tags.iter().filter(|_| rng.random_bool(0.3)) {
                    caption.push_str(&format!("#{tag} "));
                    hashtags.push((*tag).to_owned());
                }
                let mut mentions = Vec::new();
                if rng.random_bool(0.3) {
                    let m = format!("user{}", rng.random_range(1..=users));
                    caption.push_str(&format!("@{m}"));
                    mentions.push(m);
                }
                Event::PostCreated(PostCreated {
                    post_id: next_id,
                    media_type: [MediaType::Photo, MediaType::Video, MediaType::Reel]
                        [rng.random_range(0..3)],
                    media: vec!["m".into()],
                    caption,
                    location: None,
                    hashtags,
                    mentions,
                })
            }
            27..=28 => match pick(rng, &posts) {
                // Mostly by the author, sometimes by someone else (which changes nothing).
                Some((author, post)) => {
                    let actor = if rng.random_bool(0.8) { author } else { a };
                    events.push(mk(
                        actor,
                        ts,
                        Event::PostDeleted(PostDeleted { post_id: post }),
                    ));
                    continue;
                }
                None => continue,
            },
            29..=43 => match pick(rng, &posts) {
                Some((author, post)) => Event::Like(PostRef {
                    post_id: post,
                    author_id: author,
                }),
                None => continue,
            },
            44..=48 => match pick(rng, &posts) {
                Some((author, post)) => Event::Unlike(PostRef {
                    post_id: post,
                    author_id: author,
                }),
                None => continue,
            },
            49..=51 => match pick(rng, &posts) {
                Some((author, post)) => Event::Save(PostRef {
                    post_id: post,
                    author_id: author,
                }),
                None => continue,
            },
            52 => match pick(rng, &posts) {
                Some((author, post)) => Event::Unsave(PostRef {
                    post_id: post,
                    author_id: author,
                }),
                None => continue,
            },
            53..=58 => match pick(rng, &posts) {
                Some((author, post)) => {
                    next_id += 1;
                    comments.push((a, next_id, post, author));
                    let mut mentions = Vec::new();
                    let mut text = "nice".to_owned();
                    if rng.random_bool(0.3) {
                        let m = format!("user{}", rng.random_range(1..=users));
                        text.push_str(&format!(" @{m}"));
                        mentions.push(m);
                    }
                    Event::CommentCreated(CommentCreated {
                        comment_id: next_id,
                        post_id: post,
                        author_id: author,
                        text,
                        hashtags: vec![],
                        mentions,
                    })
                }
                None => continue,
            },
            59..=60 if !comments.is_empty() => {
                let (commenter, comment, post, author) =
                    comments[rng.random_range(0..comments.len())];
                let actor = match rng.random_range(0..4) {
                    0 => author,
                    1 => a,
                    _ => commenter,
                };
                let delete = Event::CommentDeleted(CommentDeleted {
                    comment_id: comment,
                    post_id: post,
                    author_id: author,
                });
                events.push(mk(actor, ts, delete));
                continue;
            }
            61..=62 => match pick(rng, &posts) {
                Some((author, post)) => Event::Share(Share {
                    post_id: post,
                    author_id: author,
                    to_id: None,
                }),
                None => continue,
            },
            63..=77 => match pick(rng, &posts) {
                Some((author, post)) => Event::View(View {
                    post_id: post,
                    author_id: author,
                    surface: Surface::Feed,
                    dwell_ms: rng.random_range(0..40_000),
                    watch_ms: rng.random_bool(0.4).then(|| rng.random_range(0..60_000)),
                }),
                None => continue,
            },
            78 => match pick(rng, &posts) {
                Some((author, post)) => Event::Hide(Hide {
                    post_id: post,
                    author_id: author,
                    surface: Surface::Explore,
                }),
                None => continue,
            },
            79 => match pick(rng, &posts) {
                Some((author, post)) => Event::Report(Report {
                    post_id: post,
                    author_id: author,
                    reason: ReportReason::Spam,
                }),
                None => continue,
            },
            80..=81 => Event::ProfileView(Target { target_id: b }),
            82..=86 => {
                next_id += 1;
                stories.push((a, next_id));
                Event::StoryCreated(StoryCreated {
                    story_id: next_id,
                    media_type: StoryMediaType::Photo,
                    media: vec!["s".into()],
                    audience: if rng.random_bool(0.3) {
                        Audience::CloseFriends
                    } else {
                        Audience::Followers
                    },
                })
            }
            87..=93 if !stories.is_empty() => {
                let (author, story) = stories[rng.random_range(0..stories.len())];
                Event::StoryViewed(StoryViewed {
                    story_id: story,
                    author_id: author,
                })
            }
            _ => {
                // A duplicate delivery of this actor's latest event.
                if let Some(e) = events.iter().rev().find(|e| e.actor_id == a) {
                    let dup = e.clone();
                    events.push(dup);
                }
                continue;
            }
        };
        events.push(mk(a, ts, event));
    }
    ts += 1;
    events.push(mk(
        users,
        ts,
        Event::UserCreated(UserCreated {
            username: format!("user{users}"),
            display_name: None,
            private: false,
            verified: false,
        }),
    ));
    events
}

/// Applies `events` (one actor's events in arrival order) partition by partition in a random
/// interleaving of random-sized batches; fan-out sometimes lags graph by a batch.
pub fn apply_interleaved(config: &Config, events: &[Envelope], rng: &mut ChaCha8Rng) {
    let keys = config.keyspace();
    let mut con = redis(config);
    let scripts: Vec<JobScript> = jobs::all()
        .into_iter()
        .map(|j| JobScript::new(j, config))
        .collect();
    let partitions: Vec<Vec<(i64, &Envelope)>> = (0..PARTITIONS)
        .map(|p| {
            events
                .iter()
                .filter(|e| partition_for(e.actor_id, PARTITIONS) == p)
                .enumerate()
                .map(|(i, e)| (i as i64, e))
                .collect()
        })
        .collect();
    let mut lanes: Vec<Vec<Lane>> = (0..PARTITIONS)
        .map(|p| {
            scripts
                .iter()
                .map(|s| s.claim_lane(&mut con, &keys, p).unwrap())
                .collect()
        })
        .collect();
    // Per partition and job: how far it has been applied.
    let mut done = vec![vec![0usize; scripts.len()]; PARTITIONS as usize];
    loop {
        let open: Vec<(usize, usize)> = (0..PARTITIONS as usize)
            .flat_map(|p| (0..scripts.len()).map(move |j| (p, j)))
            .filter(|&(p, j)| done[p][j] < partitions[p].len())
            .collect();
        if open.is_empty() {
            break;
        }
        let (p, j) = open[rng.random_range(0..open.len())];
        let from = done[p][j];
        let to = (from + rng.random_range(1..=6)).min(partitions[p].len());
        let batch = &partitions[p][from..to];
        let lane = &mut lanes[p][j];
        let split = scripts[j].split(lane, batch);
        scripts[j]
            .call(
                &keys,
                p as u32,
                &lane.epoch,
                &split.kept,
                to as i64,
                split.watermark,
            )
            .invoke(&mut con, &keys)
            .unwrap();
        lane.watermark = split.watermark;
        lane.from = to as i64;
        done[p][j] = to;
    }
}
