//! The warehouse against the serving state, end to end on the real broker and Redis: a generated
//! workload streams onto the topic while the engagement job applies it and a real `aperture
//! warehouse sink` process is SIGKILLed again and again; after a restart that drains the topic,
//! every table holds exactly the events of its family, and the likes standing on each post, as
//! SQL over the Parquet computes them (`post_likes`), equal the engagement job's Redis counters
//! and the oracle's.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::Config;
use aperture_schema::warehouse::Table;
use aperture_stream_jobs::jobs;
use aperture_stream_jobs::oracle::Oracle;
use aperture_warehouse::sql;
use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::compare::{hash, int};
use support::*;

const KILLS: usize = 8;

fn sink_process(config: &Config, drain: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aperture"));
    command.args(["warehouse", "sink"]);
    if drain {
        command.arg("--drain");
    }
    command
        .env("APERTURE__KAFKA__EVENTS_TOPIC", &config.kafka.events_topic)
        .env(
            "APERTURE__KAFKA__DEAD_LETTER_TOPIC",
            &config.kafka.dead_letter_topic,
        )
        .env("APERTURE__WAREHOUSE__ROOT", &config.warehouse.root)
        // Many small commits, so the kills land between and during them.
        .env("APERTURE__WAREHOUSE__ROLL_INTERVAL", "100ms")
        .env("APERTURE__WAREHOUSE__ROLL_SIZE", (128 << 10).to_string())
        .env("APERTURE__WAREHOUSE__METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the aperture binary runs")
}

/// Counts each table's rows, and the standing likes per post, with DataFusion.
fn read_back(root: &Path) -> (BTreeMap<&'static str, i64>, BTreeMap<u64, i64>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ctx = sql::context(root).await.expect("the catalog opens");
        let mut rows = BTreeMap::new();
        for table in Table::ALL {
            let q = format!("SELECT count(*) AS n FROM {}", table.name());
            let (_, batches) = sql::query(&ctx, &q).await.expect("the count runs");
            rows.insert(
                table.name(),
                batches[0].column(0).as_primitive::<Int64Type>().value(0),
            );
        }
        let (_, batches) = sql::query(&ctx, "SELECT post_id, likes FROM post_likes")
            .await
            .expect("the post_likes rollup runs");
        let mut likes = BTreeMap::new();
        for batch in &batches {
            let posts = batch.column(0).as_primitive::<Int64Type>();
            let counts = batch.column(1).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                assert!(!posts.is_null(i));
                likes.insert(posts.value(i) as u64, counts.value(i));
            }
        }
        (rows, likes)
    })
}

#[test]
fn sql_over_a_warehouse_whose_sink_was_killed_matches_redis_and_the_oracle() {
    let mut config = test_config("warehouse-e2e", 4);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("warehouse-e2e"));
    config.warehouse.root = dir.join("warehouse");
    create_topics(&config);
    let events = generate(&Spec {
        seed: 11,
        users: 600,
        days: 0.5,
        ..Spec::default()
    })
    .events;
    assert!(
        events
            .iter()
            .any(|e| e.kind() == aperture_schema::EventKind::Unlike),
        "the workload takes some likes back"
    );

    let worker =
        RunningWorker::start_jobs(&config, jobs::by_names(&["engagement".to_owned()]).unwrap());
    // Stream the workload in chunks while the sink is killed at random moments.
    let producer = {
        let config = config.clone();
        let events = events.clone();
        std::thread::spawn(move || {
            for chunk in events.chunks(events.len().div_ceil(30)) {
                produce(&config, chunk);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..KILLS {
        let mut sink = sink_process(&config, false);
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1_200)));
        sink.kill().expect("SIGKILL reaches the sink");
        sink.wait().unwrap();
    }
    producer.join().unwrap();
    let (before, _) = read_back(&config.warehouse.root);
    let committed: i64 = before.values().sum();
    assert!(
        committed > 0 && (committed as usize) < events.len(),
        "the killed sinks committed part of the topic ({committed} of {} rows), so the \
         restart resumes rather than starts over",
        events.len()
    );

    // The restart: read up to the end of the topic, commit, exit.
    let started = Instant::now();
    let status = sink_process(&config, true).wait().unwrap();
    assert!(status.success(), "the draining sink failed: {status}");
    assert!(started.elapsed() < Duration::from_secs(300));
    wait_caught_up(&config, &["engagement"], Duration::from_secs(180));
    worker.stop();

    let (rows, sql_likes) = read_back(&config.warehouse.root);
    let mut expected_rows: BTreeMap<&'static str, i64> =
        Table::ALL.iter().map(|t| (t.name(), 0)).collect();
    for e in &events {
        *expected_rows.get_mut(Table::of(e.kind()).name()).unwrap() += 1;
    }
    assert_eq!(rows, expected_rows, "rows per table after {KILLS} SIGKILLs");

    let mut oracle = Oracle::new(&config);
    oracle.apply_all(&events);
    let oracle_likes: BTreeMap<u64, i64> = oracle
        .engagement
        .posts
        .iter()
        .filter(|(_, s)| !s.likers.is_empty())
        .map(|(&post, s)| (post, s.likers.len() as i64))
        .collect();
    assert!(oracle_likes.len() > 100, "enough liked posts to compare");
    assert_eq!(
        sql_likes, oracle_likes,
        "post_likes (SQL) against the oracle"
    );

    let keys = config.keyspace();
    let mut con = redis(&config);
    let mut redis_likes = BTreeMap::new();
    for &post in oracle.engagement.posts.keys().chain(sql_likes.keys()) {
        let likes = int(&hash(&mut con, &keys.post_counts(post)), "likes");
        if likes != 0 {
            redis_likes.insert(post, likes);
        }
    }
    assert_eq!(sql_likes, redis_likes, "post_likes (SQL) against Redis");
    let _ = std::fs::remove_dir_all(&dir);
}
