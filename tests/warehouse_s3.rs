//! The warehouse on object storage, end to end: a real S3-protocol server on loopback (moto's
//! server mode, installed by `scripts/services`), the real broker, and real `aperture`
//! processes. A generated workload streams onto the topic while `aperture warehouse sink` on an
//! `s3://` root crashes at both points of a commit and is SIGKILLed again and again; after a
//! restart that drains the topic, every table holds exactly the events of its family, the
//! bucket holds exactly the files the manifest lists, no killed sink's local scratch folder is
//! left behind, and the rollups read through `aperture sql` equal those of a local root
//! holding the same events. SQL reads what the manifest holds even while a crash leaves
//! committed files staged: after a sink dies between its manifest and its copies, and after a
//! compaction dies between deleting a swap's inputs and copying its outputs in. Compaction on
//! the bucket, crashed with its swap committed and again halfway through carrying it out, then
//! leaves the counts as they were; the compaction after those crashes leaves no scratch folder.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::Config;
use aperture_schema::warehouse::Table;
use aperture_warehouse::Manifest;
use aperture_warehouse::failpoint::FAILPOINT_ENV;
use aperture_warehouse::object::ObjectRoot;
use object_store::aws::AmazonS3Builder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::*;

const KILLS: usize = 4;
const BUCKET: &str = "aperture-test";

/// A moto S3 server on a free loopback port, stopped when dropped.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    fn start() -> S3Server {
        let state = std::env::var_os("APERTURE_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".aperture"));
        let bin = state.join("s3/bin/moto_server");
        assert!(
            bin.is_file(),
            "{} is missing: `scripts/services up` installs it",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let server = S3Server { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not open port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// One unsigned request (the server takes them): status and body.
    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The root at `s3://BUCKET/prefix` through `object_store`, signed like any client.
    fn root(&self, prefix: &str) -> ObjectRoot {
        let store = AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        let url = url::Url::parse(&format!("s3://{BUCKET}/{prefix}")).unwrap();
        ObjectRoot::new(url, Arc::new(store)).unwrap()
    }

    fn env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The temporary folder of the test's `aperture` processes, where sinks and compactions make
/// their scratch folders.
fn tmp_dir(config: &Config) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-tmp", config.kafka.events_topic));
    std::fs::create_dir_all(&dir).expect("the processes' temporary folder");
    dir
}

/// The scratch folders named `<prefix>…` in the processes' temporary folder.
fn scratch(config: &Config, prefix: &str) -> Vec<String> {
    std::fs::read_dir(tmp_dir(config))
        .expect("the processes' temporary folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with(prefix))
        .collect()
}

fn aperture(config: &Config, root: &str, s3: &S3Server) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aperture"));
    command
        .env("TMPDIR", tmp_dir(config))
        .env("APERTURE__KAFKA__EVENTS_TOPIC", &config.kafka.events_topic)
        .env(
            "APERTURE__KAFKA__DEAD_LETTER_TOPIC",
            &config.kafka.dead_letter_topic,
        )
        .env("APERTURE__WAREHOUSE__ROOT", root)
        .env("APERTURE__WAREHOUSE__ROLL_INTERVAL", "100ms")
        .env("APERTURE__WAREHOUSE__ROLL_SIZE", (128 << 10).to_string())
        .env("APERTURE__WAREHOUSE__METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .envs(s3.env());
    command
}

fn sink_process(config: &Config, root: &str, s3: &S3Server, drain: bool) -> Child {
    let mut command = aperture(config, root, s3);
    command.args(["warehouse", "sink"]);
    if drain {
        command.arg("--drain");
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the aperture binary runs")
}

fn run(mut command: Command, what: &str) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the aperture binary runs");
    assert!(
        status.success(),
        "{what} failed ({status}): {}",
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8(stdout).unwrap()
}

fn sql(config: &Config, root: &str, s3: &S3Server, query: &str) -> String {
    let mut command = aperture(config, root, s3);
    command.args(["sql", "--format", "csv", query]);
    run(command, &format!("`aperture sql {query}` on {root}"))
}

/// Runs `command` with a crash point armed and waits for it to abort there.
fn crashes(mut command: Command, point: &str) {
    let mut child = command.spawn().expect("the aperture binary runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the process never reached crash point {point}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "crash point {point}: {status}");
}

/// Rows and distinct event ids per table, through `aperture sql`.
fn counts(config: &Config, root: &str, s3: &S3Server) -> BTreeMap<String, (i64, i64)> {
    let query = Table::ALL
        .iter()
        .map(|t| {
            format!(
                "SELECT '{0}' AS t, count(*) AS n, count(DISTINCT event_id) AS ids FROM {0}",
                t.name()
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    sql(config, root, s3, &query)
        .lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            (
                cols[0].to_owned(),
                (cols[1].parse().unwrap(), cols[2].parse().unwrap()),
            )
        })
        .collect()
}

fn manifest(root: &ObjectRoot) -> Option<Manifest> {
    block_on(root.load()).unwrap().map(|(m, _)| m)
}

/// The bucket holds exactly the data files the manifest lists, and nothing staged.
fn assert_bucket_matches_manifest(root: &ObjectRoot, when: &str) -> Manifest {
    let manifest = manifest(root).expect("the root has a manifest");
    assert_eq!(manifest.swap, None, "{when}: no swap left half done");
    let objects: Vec<String> = block_on(root.list(""))
        .unwrap()
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    let data: BTreeSet<String> = objects
        .iter()
        .filter(|rel| !rel.starts_with("_sink/"))
        .cloned()
        .collect();
    let listed: BTreeSet<String> = manifest.files.keys().cloned().collect();
    assert_eq!(data, listed, "{when}: data objects against the manifest");
    let staged: Vec<&String> = objects
        .iter()
        .filter(|rel| rel.starts_with("_sink/tmp/") || rel.starts_with("_sink/staging/"))
        .collect();
    assert!(staged.is_empty(), "{when}: staged objects left: {staged:?}");
    manifest
}

#[test]
fn a_killed_sink_on_s3_writes_every_event_once_and_sql_reads_it_like_a_local_root() {
    let s3 = S3Server::start();
    let (status, body) = s3.request("PUT", &format!("/{BUCKET}"));
    assert_eq!(status, 200, "creating the bucket: {body}");
    let prefix = "warehouse";
    let root = format!("s3://{BUCKET}/{prefix}");
    let config = test_config("warehouse-s3", 4);
    create_topics(&config);
    let events = generate(&Spec {
        seed: 13,
        users: 400,
        days: 0.5,
        ..Spec::default()
    })
    .events;

    let producer = {
        let config = config.clone();
        let events = events.clone();
        std::thread::spawn(move || {
            for chunk in events.chunks(events.len().div_ceil(20)) {
                produce(&config, chunk);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let bucket = s3.root(prefix);
    // Crashes at the two points of a commit: files staged but the manifest not yet put, and
    // the manifest put but the files not yet copied into place.
    for point in ["sink-before-manifest@2", "sink-after-manifest@3"] {
        let mut sink = aperture(&config, &root, &s3);
        sink.args(["warehouse", "sink"])
            .env(FAILPOINT_ENV, point)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crashes(sink, point);
    }
    let crashed = manifest(&bucket).expect("the crashed sinks committed");
    let in_place: BTreeSet<String> = block_on(bucket.list(""))
        .unwrap()
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        crashed.files.keys().any(|rel| !in_place.contains(rel)),
        "the crash after the manifest left committed files staged, for the restart to place"
    );
    // SQL reads what the manifest holds, the committed files still staged included.
    let committed: BTreeMap<String, (i64, i64)> = Table::ALL
        .iter()
        .map(|t| {
            let rows = crashed.rows.get(t.name()).copied().unwrap_or(0) as i64;
            (t.name().to_owned(), (rows, rows))
        })
        .collect();
    assert_eq!(
        counts(&config, &root, &s3),
        committed,
        "rows and distinct ids per table with the last commit's files still staged"
    );

    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for _ in 0..KILLS {
        let mut sink = sink_process(&config, &root, &s3, false);
        std::thread::sleep(Duration::from_millis(rng.random_range(500..1_500)));
        sink.kill().expect("SIGKILL reaches the sink");
        sink.wait().unwrap();
    }
    producer.join().unwrap();
    assert!(
        !scratch(&config, "aperture-sink-").is_empty(),
        "the last killed sink left its scratch folder"
    );
    let committed: u64 = manifest(&bucket)
        .map(|m| m.rows.values().sum())
        .unwrap_or(0);
    assert!(
        committed > 0 && (committed as usize) < events.len(),
        "the killed sinks committed part of the topic ({committed} of {} rows)",
        events.len()
    );

    let status = sink_process(&config, &root, &s3, true).wait().unwrap();
    assert!(status.success(), "the draining sink failed: {status}");
    let drained = assert_bucket_matches_manifest(&bucket, "after the drain");
    assert_eq!(
        scratch(&config, "aperture-sink-"),
        Vec::<String>::new(),
        "the drain deleted what the killed sinks left, and its own"
    );
    assert!(drained.writer.is_some(), "the last sink left its token");

    let mut expected: BTreeMap<String, (i64, i64)> = Table::ALL
        .iter()
        .map(|t| (t.name().to_owned(), (0, 0)))
        .collect();
    for e in &events {
        let entry = expected.get_mut(Table::of(e.kind()).name()).unwrap();
        entry.0 += 1;
        entry.1 += 1;
    }
    assert_eq!(
        counts(&config, &root, &s3),
        expected,
        "rows and distinct ids per table after {KILLS} SIGKILLs"
    );

    // The same events in a local root, as one commit: the rollups agree row for row.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("warehouse-s3-local"));
    let local = dir.join("warehouse");
    aperture_warehouse::sink::write_events(&local, "fixture", events.clone(), 10_000).unwrap();
    let local = local.display().to_string();
    for query in [
        "SELECT * FROM creator_daily ORDER BY dt, author_id",
        "SELECT * FROM post_likes ORDER BY post_id",
        "SELECT * FROM hashtag_daily ORDER BY dt, hashtag",
    ] {
        let on_s3 = sql(&config, &root, &s3, query);
        assert!(on_s3.lines().count() > 10, "{query} returns rows");
        assert_eq!(on_s3, sql(&config, &local, &s3, query), "{query}");
    }

    // Compaction on the bucket: fewer files, the same rows. The first run dies with its swap
    // committed and not carried out; SQL reads the staged outputs the manifest now lists, and
    // the next run finishes the swap before it goes on.
    let files_before = drained.files.len();
    let mut compact = aperture(&config, &root, &s3);
    compact
        .args(["warehouse", "compact"])
        .env(FAILPOINT_ENV, "compact-after-manifest")
        .stderr(Stdio::null());
    crashes(compact, "compact-after-manifest");
    assert!(
        manifest(&bucket).unwrap().swap.is_some(),
        "the crashed compaction left its swap recorded"
    );
    assert_eq!(
        counts(&config, &root, &s3),
        expected,
        "with a swap committed and not carried out"
    );
    // The next run dies carrying that swap out, its inputs deleted and its outputs not yet
    // copied in: SQL reads the staged outputs.
    let mut compact = aperture(&config, &root, &s3);
    compact
        .args(["warehouse", "compact"])
        .env(FAILPOINT_ENV, "swap-after-inputs-deleted")
        .stderr(Stdio::null());
    crashes(compact, "swap-after-inputs-deleted");
    let half = manifest(&bucket).unwrap();
    let swap = half.swap.clone().expect("the swap is still recorded");
    let in_place: BTreeSet<String> = block_on(bucket.list(&swap.partition))
        .unwrap()
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        swap.outputs
            .iter()
            .all(|name| !in_place.contains(&format!("{}/{name}", swap.partition))),
        "the swap's outputs are not in place yet: {in_place:?}"
    );
    assert!(
        swap.inputs
            .iter()
            .all(|name| !in_place.contains(&format!("{}/{name}", swap.partition))),
        "the swap's inputs are deleted: {in_place:?}"
    );
    assert_eq!(
        counts(&config, &root, &s3),
        expected,
        "with a swap's inputs deleted and its outputs still staged"
    );
    let mut compact = aperture(&config, &root, &s3);
    compact.args(["warehouse", "compact"]);
    run(compact, "compaction");
    let compacted = assert_bucket_matches_manifest(&bucket, "after compaction");
    assert!(
        compacted.files.len() < files_before,
        "compaction merged files ({files_before} -> {})",
        compacted.files.len()
    );
    assert_eq!(counts(&config, &root, &s3), expected, "after compaction");
    assert_eq!(
        scratch(&config, "aperture-compact-"),
        Vec::<String>::new(),
        "the compaction deleted what the crashed one left, and its own"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(tmp_dir(&config));
}
