//! The slot-local jobs on a real local Redis Cluster (3 masters, 3 replicas; `scripts/services
//! up --cluster`, which `make test` runs): random activity through the broker and a worker,
//! its state against the oracle's; and proof that the cluster refuses what the rule forbids.

mod support;

use std::time::Duration;

use aperture_schema::Config;
use aperture_stream_jobs::jobs;
use aperture_stream_jobs::oracle::Oracle;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use support::compare::*;
use support::*;

/// The local cluster's seed nodes (`APERTURE_CLUSTER_URL` to use another).
fn cluster_config(name: &str, partitions: u32) -> Config {
    let mut config = test_config(name, partitions);
    config.redis.cluster = true;
    config.redis.url = std::env::var("APERTURE_CLUSTER_URL").unwrap_or_else(|_| {
        (7001..=7003)
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
            .join(",")
    });
    let mut probe = redis_any(&config);
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut *probe)
        .expect("a Redis Cluster answers (start one with `scripts/services up --cluster`)");
    assert!(info.contains("cluster_state:ok"), "cluster not ok: {info}");
    config
}

#[test]
fn engagement_on_a_cluster_equals_the_oracle() {
    let config = cluster_config("cluster-engagement", PARTITIONS);
    let _wipe = WipeOnDrop(&config);
    let mut rng = ChaCha8Rng::seed_from_u64(70_000);
    let events = random_activity(&mut rng, 12, 1_500, now_ms() - 3 * 3600 * 1000);
    create_topics(&config);
    produce(&config, &events);
    let worker =
        RunningWorker::start_jobs(&config, jobs::by_names(&["engagement".into()]).unwrap());
    wait_caught_up(&config, &["engagement"], Duration::from_secs(120));
    worker.stop();
    let mut oracle = Oracle::new(&config);
    oracle.apply_all(&events);
    assert!(
        !oracle.engagement.posts.is_empty(),
        "the workload engaged with posts"
    );
    compare_engagement(&config, &oracle, 0);

    // The keys really are spread over the masters, and a script that touches two slots is
    // refused: what the cluster rule prevents would fail here, not pass silently.
    let keys = config.keyspace();
    let mut con = redis_any(&config);
    let cross: redis::RedisResult<()> =
        redis::Script::new("redis.call('SET', KEYS[1], 1) redis.call('SET', KEYS[2], 1) return 0")
            .key(keys.post_counts(1))
            .key(keys.post_counts(2))
            .invoke(&mut *con);
    let error = cross.expect_err("a two-slot script is refused");
    assert!(
        error.to_string().contains("CROSSSLOT") || error.to_string().contains("same slot"),
        "{error}"
    );
}
