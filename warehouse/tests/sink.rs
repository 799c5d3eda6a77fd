//! The warehouse sink against the real broker: SIGKILLed at random points while events and
//! poison stream in, crashed at each step of its commit, and stopped gracefully, it ends with
//! every valid event in its table exactly once and every invalid record counted, not written.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aperture_schema::warehouse::Table;
use aperture_warehouse::layout::tmp_dir;
use aperture_warehouse::manifest::Manifest;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::*;

/// Not a test: the body of the child processes the crash tests start (see `support`). Run
/// without them it does nothing.
#[test]
#[ignore = "runs only as the child process of a crash test"]
fn child_process() {
    child_main();
}

/// The last commit of the root, 0 before the sink first opens it.
fn manifest_commit(config: &aperture_schema::Config) -> u64 {
    Manifest::load(&config.warehouse.root)
        .ok()
        .flatten()
        .map_or(0, |m| m.commit)
}

fn manifest(config: &aperture_schema::Config) -> Manifest {
    Manifest::load(&config.warehouse.root)
        .unwrap()
        .expect("the sink created the manifest")
}

#[test]
fn a_sink_killed_again_and_again_while_events_stream_holds_every_valid_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config("wh-kill", 4, dir.path());
    create_topics(&config);
    let events = workload(21, 400, 0.25);
    let bad = poison(60);
    let producer = {
        let config = config.clone();
        let events = events.clone();
        let bad = bad.clone();
        std::thread::spawn(move || {
            let chunks = 30;
            let size = events.len().div_ceil(chunks);
            for (i, chunk) in events.chunks(size).enumerate() {
                produce(&config, chunk);
                produce_raw(&config, &bad[i * 2..i * 2 + 2]);
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (mut kills, mut lives_that_committed) = (0, 0);
    while kills < 12 {
        let before = manifest_commit(&config);
        let mut child = spawn_child(&config, "sink", None);
        // Kill at a random moment after the sink has committed once: mid-buffer, mid-write,
        // mid-rename, wherever it happens to be.
        let deadline = Instant::now() + Duration::from_secs(30);
        while manifest_commit(&config) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if manifest_commit(&config) > before {
            lives_that_committed += 1;
        }
    }
    producer.join().unwrap();
    assert!(
        lives_that_committed >= kills / 2,
        "only {lives_that_committed} of {kills} killed sinks committed anything"
    );

    let summary = sink_until_caught_up(&config);
    let root = &config.warehouse.root;
    assert_exactly_once(root, &events, &format!("after {kills} kills"));
    assert_root_consistent(root);
    let m = manifest(&config);
    assert_eq!(
        m.skipped.values().sum::<u64>(),
        bad.len() as u64,
        "every poison record is counted once: {:?}",
        m.skipped
    );
    for (table, ids) in expected_ids(&events) {
        assert_eq!(
            m.rows.get(table.name()).copied().unwrap_or(0),
            ids.len() as u64
        );
        assert_eq!(m.live_rows(table.name()), ids.len() as u64);
    }
    assert!(summary.commits >= 1);
}

/// Crashes at the two instants where a commit is half done; the restart must finish the one
/// that reached its manifest and redo the one that did not, and readers must never see rows
/// the restart takes back.
#[test]
fn a_sink_crashed_before_or_after_its_manifest_is_replaced_resumes_exactly() {
    for point in ["sink-before-manifest", "sink-after-manifest"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config("wh-crash", 3, dir.path());
        // Small commits, so the third one comes long before the end of the topic.
        config.warehouse.roll_size = 64 << 10;
        create_topics(&config);
        let events = workload(22, 200, 0.25);
        produce(&config, &events);
        let bad = poison(10);
        produce_raw(&config, &bad);

        let mut child = spawn_child(&config, "sink", Some(&format!("{point}@3")));
        let status = wait_exit(&mut child, Duration::from_secs(120));
        assert!(
            !status.success(),
            "{point}: the sink aborted at the crash point"
        );

        let root = &config.warehouse.root;
        let m = manifest(&config);
        let pending = aperture_warehouse::fs::entries(&tmp_dir(root)).unwrap();
        assert!(
            !pending.is_empty(),
            "{point}: commit 3's files wait in _sink/tmp"
        );
        let visible = visible_ids(root);
        let visible_rows: BTreeMap<Table, u64> = visible
            .iter()
            .map(|(t, ids)| (*t, ids.len() as u64))
            .collect();
        match point {
            "sink-before-manifest" => {
                assert_eq!(m.commit, 2, "{point}: commit 3 never happened");
                for table in Table::ALL {
                    assert_eq!(
                        visible_rows[&table],
                        m.live_rows(table.name()),
                        "{point}: {table}: readers see exactly the committed rows"
                    );
                }
            }
            _ => {
                assert_eq!(m.commit, 3, "{point}: commit 3 is durable");
                let missing = m
                    .files
                    .keys()
                    .filter(|rel| !root.join(rel).is_file())
                    .count();
                assert!(
                    missing > 0,
                    "{point}: commit 3's files are not in place yet"
                );
                for table in Table::ALL {
                    assert!(
                        visible_rows[&table] <= m.live_rows(table.name()),
                        "{point}: {table}: readers see no row the manifest does not vouch for"
                    );
                }
            }
        }

        sink_until_caught_up(&config);
        assert_exactly_once(root, &events, point);
        assert_root_consistent(root);
        assert_eq!(
            manifest(&config).skipped.values().sum::<u64>(),
            bad.len() as u64,
            "{point}"
        );
    }
}

#[test]
fn a_sink_stopped_gracefully_commits_what_it_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config("wh-stop", 2, dir.path());
    // Nothing would be committed before shutdown by size or by time.
    config.warehouse.roll_interval = Duration::from_secs(3600);
    config.warehouse.roll_size = 1 << 40;
    create_topics(&config);
    let events = workload(23, 100, 0.1);
    produce(&config, &events);

    let sink = RunningSink::start(&config);
    let total = topic_records(&config) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.progress.consumed() < total {
        assert!(Instant::now() < deadline, "the sink did not read the topic");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        sink.progress.commits(),
        0,
        "nothing is committed before shutdown"
    );
    let summary = sink.stop();
    assert_eq!(summary.commits, 1);
    assert_eq!(summary.rows, events.len() as u64);
    assert_eq!(committed_records(&config.warehouse.root), total as i64);
    assert_exactly_once(&config.warehouse.root, &events, "after a graceful stop");
    assert_root_consistent(&config.warehouse.root);
}

#[test]
fn a_second_sink_on_the_same_root_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config("wh-lock", 1, dir.path());
    create_topics(&config);
    let first = RunningSink::start(&config);
    let err = aperture_warehouse::Sink::open(&config, Default::default()).unwrap_err();
    assert!(err.to_string().contains("held by another sink"), "{err}");
    first.stop();
    // Once the first is gone, the root is free again.
    aperture_warehouse::Sink::open(&config, Default::default()).unwrap();
}
