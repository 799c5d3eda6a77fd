//! What the broker tests share: configuration pointing at the real broker with a fresh topic,
//! the ingest app on `127.0.0.1:0`, a private tansu broker that a test may kill and restart, and
//! event builders.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aperture_ingest::api::{self, AppState};
use aperture_ingest::kafka::{self, TopicRecord, Watermarks};
use aperture_schema::Config;
use serde_json::{Value, json};

/// Configuration from the environment (broker from `APERTURE__KAFKA__BROKERS`, default
/// 127.0.0.1:9092) with topics of its own, so tests never see each other's events.
pub fn test_config(name: &str, partitions: u32) -> Config {
    let mut config = Config::load(None).expect("test configuration is valid");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    config.kafka.events_topic = format!("test.{name}.{nanos}");
    config.kafka.dead_letter_topic = format!("test.{name}.{nanos}.dlq");
    config.kafka.partitions = partitions;
    config
}

/// The ingest app served on an ephemeral port; topics created first.
pub struct TestApi {
    pub url: String,
    pub config: Config,
    _server: tokio::task::JoinHandle<()>,
}

impl TestApi {
    pub async fn start(config: Config) -> TestApi {
        kafka::ensure_topics(&config)
            .await
            .expect("topics can be created");
        Self::start_without_topics(config).await
    }

    pub async fn start_without_topics(config: Config) -> TestApi {
        let state = AppState::new(&config).expect("the producer can be created");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, api::app(state)).await.unwrap();
        });
        TestApi {
            url,
            config,
            _server: server,
        }
    }

    pub async fn post_json(&self, body: &Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/events", self.url))
            .json(body)
            .send()
            .await
            .expect("the API answers");
        let status = r.status().as_u16();
        (status, r.json().await.expect("the API answers JSON"))
    }

    pub async fn post_raw(&self, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/events", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the API answers")
    }

    pub async fn healthz(&self) -> u16 {
        reqwest::get(format!("{}/healthz", self.url))
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Every record on the events topic, read from the beginning.
    pub async fn read_topic(&self, expected: usize) -> Vec<TopicRecord> {
        let kafka_cfg = self.config.kafka.clone();
        let topic = self.config.kafka.events_topic.clone();
        tokio::task::spawn_blocking(move || {
            let after = kafka::watermarks(&kafka_cfg, &topic, Duration::from_secs(10)).unwrap();
            let total: i64 = after.iter().map(|w| w.high - w.low).sum();
            assert_eq!(total as usize, expected, "records on the topic");
            let before: Vec<Watermarks> = after
                .iter()
                .map(|w| Watermarks { high: w.low, ..*w })
                .collect();
            kafka::read_between(&kafka_cfg, &topic, &before, &after, Duration::from_secs(60))
                .unwrap()
        })
        .await
        .unwrap()
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A valid event of a few kinds, varied by `i`.
pub fn good_event(i: u64) -> Value {
    let actor = 1 + i % 37;
    let base =
        json!({"v": 1, "event_id": format!("e-{i}"), "actor_id": actor, "ts": now_ms() - 1000});
    let mut v = base.as_object().unwrap().clone();
    let fields = match i % 3 {
        0 => json!({"type": "post_created", "post_id": 1000 + i, "media_type": "photo",
                    "media": [format!("m/{i}.jpg")], "caption": format!("pic {i} #Demo @friend")}),
        1 => json!({"type": "like", "post_id": 1000 + i, "author_id": actor + 1}),
        _ => json!({"type": "follow", "target_id": actor + 1}),
    };
    v.extend(fields.as_object().unwrap().clone());
    Value::Object(v)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tansu broker of the test's own, on a port of its own, with its data in a temporary folder
/// that survives restarts.
pub struct TestBroker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        let mut b = TestBroker {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        b.restart();
        b
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn binary() -> PathBuf {
        if let Some(bin) = std::env::var_os("APERTURE_TANSU_BIN") {
            return bin.into();
        }
        let home = std::env::var_os("HOME").unwrap_or_default();
        let cargo_bin = PathBuf::from(home).join(".cargo/bin/tansu");
        if cargo_bin.exists() {
            cargo_bin
        } else {
            PathBuf::from("tansu")
        }
    }

    /// Starts the broker (again) on the same port and storage; waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(Self::binary())
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu runs (scripts/services install puts it on the machine)");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no goodbye to clients, nothing flushed beyond what was committed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
