//! Typed configuration: embedded defaults, then a file, then `APERTURE__*` environment variables.
//!
//! Every key is documented in `schema/default.toml`, which is compiled in, so a binary with no
//! file and no environment runs on those defaults. Unknown keys are errors, and cross-field rules
//! are checked once at start-up by [`Config::load`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

/// The defaults, as shipped.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Prefix of environment variables that override configuration.
pub const ENV_PREFIX: &str = "APERTURE__";

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong type, a key is unknown, or a file cannot be read or parsed.
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// Values that are each valid but do not make sense together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub kafka: KafkaConfig,
    pub redis: RedisConfig,
    pub ingest: IngestConfig,
    pub fanout: FanoutConfig,
    pub runtime: RuntimeConfig,
    pub serving: ServingConfig,
    pub engagement: EngagementConfig,
    pub notifications: NotificationsConfig,
    pub trending: TrendingConfig,
    pub stories: StoriesConfig,
    pub warehouse: WarehouseConfig,
    pub ranking: RankingConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`. Default `127.0.0.1:9092`.
    pub brokers: String,
    /// The events topic. Default `aperture.events.v1`.
    pub events_topic: String,
    /// The dead-letter topic. Default `aperture.events.dlq.v1`.
    pub dead_letter_topic: String,
    /// Partitions of topics Aperture creates. Default 8.
    pub partitions: u32,
    /// Replication factor of topics Aperture creates. Default 1.
    pub replication_factor: u16,
    /// Client id reported to the broker. Default `aperture`.
    pub client_id: String,
    pub producer: ProducerConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProducerConfig {
    /// Time to fill a batch. Default 5 ms.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Most messages in flight in the producer. Default 100,000.
    pub queue_max_messages: u32,
    /// Delivery deadline per message, retries included. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub message_timeout: Duration,
    /// Batch compression codec. Default none.
    pub compression: Compression,
}

/// Record batch compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// librdkafka's name for the codec.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisConfig {
    /// Redis URL. Default `redis://127.0.0.1:6379/0`. With `cluster`, one or more seed nodes of
    /// the cluster, comma-separated.
    pub url: String,
    /// Whether `url` names a Redis Cluster. Default false.
    #[serde(default)]
    pub cluster: bool,
    /// Prefix of every key. Default `ap`.
    pub key_prefix: String,
}

impl RedisConfig {
    /// The URLs in `url`: one server, or a cluster's seed nodes.
    pub fn seeds(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IngestConfig {
    /// Listen address of the ingest API. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body in bytes. Default 8 MiB.
    pub max_body_bytes: usize,
    /// Most events per request. Default 5,000.
    pub max_batch_events: usize,
    /// Allowed clock skew for `ts`. Default 5 minutes.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// Deadline of one request. Default 90 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `Retry-After` when the producer is full. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FanoutConfig {
    /// Followers at which an author's posts are pulled instead of pushed. Default 10,000.
    pub celebrity_threshold: u64,
    /// Fraction below the threshold at which a celebrity is pushed again. Default 0.1.
    pub celebrity_hysteresis: f64,
    /// Entries kept per home timeline. Default 800.
    pub timeline_cap: usize,
    /// Inactivity after which a follower is skipped at fan-out. Default 30 days.
    #[serde(with = "humantime_serde")]
    pub inactive_after: Duration,
    /// Posts kept per author for pull and backfill. Default 100.
    pub recent_posts_cap: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuntimeConfig {
    /// Consumer group of the stream workers. Default `aperture-jobs`.
    pub group_id: String,
    /// Most events per partition batch. Default 500.
    pub batch_max_events: usize,
    /// Time to fill a batch. Default 20 ms.
    #[serde(with = "humantime_serde")]
    pub batch_wait: Duration,
    /// Partition lease period: a dead worker's partitions move after at most this long.
    /// Default 6 s.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// Prometheus endpoint of `aperture run`. Default `127.0.0.1:9101`.
    pub metrics_listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServingConfig {
    /// Address of the read API. Default `127.0.0.1:8081`.
    pub listen: SocketAddr,
    /// HS256 secret that signs and verifies bearer tokens. The default is for development only.
    pub jwt_secret: String,
    /// Lifetime of the tokens `aperture token` mints. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// How long one request may take before it is answered 503. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long the read API reuses a post's like and comment counts before reading them
    /// again; 0 reads them on every request. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub counts_ttl: Duration,
    /// The creators' dashboard folds a breakdown's part (views by surface) into "other" when
    /// fewer accounts than this make it up, so no small group of viewers is singled out;
    /// totals stay exact. Default 10.
    pub insights_min_accounts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngagementConfig {
    /// How long (in the actor's event time) an engagement event's id is remembered, so a
    /// redelivered view, share, hide or report counts once. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// Half-life of viewer→author affinity. Default 7 days.
    #[serde(with = "humantime_serde")]
    pub affinity_half_life: Duration,
}

/// How ranking combines its task predictions and where its models live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RankingConfig {
    /// Folder of the versioned model artifacts `aperture rank train` writes and serving loads
    /// (the newest accepted one). Default `.aperture/models`.
    pub models_dir: std::path::PathBuf,
    /// The final score's weights: score = Σ weight · P(task) + watch weight · E[watch s],
    /// with P(negative) subtracted by its weight. Defaults: like 1, comment 4, share 6, save 4,
    /// negative 20, watch 0.05 per second.
    pub weights: ScoreWeights,
    /// Days at the end of the warehouse held out for evaluation (train on the days before).
    /// When the warehouse spans no more than this, the last quarter of its span is held out.
    /// Default 1.
    pub holdout_days: u32,
    /// What serving does around the model: candidates, re-ranking rules, sessions, reloads.
    pub serving: RankServingConfig,
}

/// Candidates, re-ranking and sessions of Explore, Reels and the ranked feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RankServingConfig {
    /// Candidates scored per Explore or Reels batch. Default 500.
    pub candidates: usize,
    /// Most posts of one author in any run of `page-window` consecutive items of Explore and
    /// Reels. Default 2.
    pub author_cap: usize,
    /// Items a page may hold at most, and the run the author cap holds over. Default 50.
    pub page_window: usize,
    /// Score factor for an author's second item, squared for the third, and so on. Default 0.6.
    pub author_decay: f64,
    /// Score factor per item of the same media type among the four placed before. Default 0.85.
    pub media_decay: f64,
    /// Freshness: score × (1 + weight · 2^(−age / half-life)). Defaults 0.3 and 24 h.
    pub freshness_weight: f64,
    #[serde(with = "humantime_serde")]
    pub freshness_half_life: Duration,
    /// Score factor in the ranked feed for a post the viewer has already seen. Default 0.3.
    pub seen_factor: f64,
    /// Hides and reports of an author's posts after which Explore and Reels leave the author
    /// out. Default 2.
    pub hide_author_after: i64,
    /// How long a session's pages are kept, so a cursor never repeats an item. Default 30 min.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// How often serving looks for a newer accepted model. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub reload_every: Duration,
    /// How long candidate posts' and authors' feature state is kept across requests; 0 reads
    /// it fresh every time. Visibility is always read fresh. Default 2 s.
    #[serde(with = "humantime_serde")]
    pub state_ttl: Duration,
    /// Whether items carry their score breakdown (`debug`). Default false.
    pub debug: bool,
}

/// Weights of the final score (see [`RankingConfig::weights`]); all at least 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScoreWeights {
    pub like: f64,
    pub comment: f64,
    pub share: f64,
    pub save: f64,
    /// Subtracted: a hide or a report costs this many likes.
    pub negative: f64,
    /// Per expected second of watch time (videos and reels).
    pub watch_per_second: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NotificationsConfig {
    /// Events on the same (recipient, post, type) within one window of event time become one
    /// batch. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Batches kept per recipient; older ones are dropped. Default 500.
    pub kept: usize,
    /// Actors named in a batch (the latest ones); the rest are a total. Default 3.
    pub latest_actors: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrendingConfig {
    /// How far behind its partition's event-time watermark a post may arrive and still be
    /// counted in its bucket; later ones go to the dead-letter topic. Default 1 h.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Fewest distinct accounts that must have posted a tag in the window for it to trend.
    /// Default 3.
    pub min_accounts: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoriesConfig {
    /// How often a worker runs its jobs' housekeeping: the stories job sweeps expired stories
    /// that a missed TTL left behind, and the trending job drops history it no longer keeps.
    /// Default 1 min.
    #[serde(with = "humantime_serde")]
    pub sweep_every: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WarehouseConfig {
    /// Folder holding the Parquet tables (one sub-folder each) and the sink's manifest, relative
    /// to the working directory unless absolute. Default `.aperture/warehouse`.
    pub root: PathBuf,
    /// Estimated bytes of buffered rows (uncompressed, all tables together) at which the sink
    /// commits its files. Default 128 MiB.
    pub roll_size: u64,
    /// Longest a consumed event waits in memory before the sink commits. Default 1 min.
    #[serde(with = "humantime_serde")]
    pub roll_interval: Duration,
    /// Most rows in one Parquet row group. Default 262,144.
    pub row_group_size: usize,
    /// Files of one table and day smaller than this many bytes (as stored) are merged by
    /// compaction. Default 256 MiB.
    pub compact_target_size: u64,
    /// Prometheus endpoint of `aperture warehouse sink`. Default `127.0.0.1:9102`.
    pub metrics_listen: SocketAddr,
}

/// Shortest `warehouse.roll-interval`: every commit fsyncs its files and the manifest, and
/// commits more often than this only make smaller files.
pub const MIN_ROLL_INTERVAL: Duration = Duration::from_millis(100);

impl Config {
    /// Defaults, then `file` when given, then `APERTURE__*` variables; checked.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(env_provider());
        Self::from_figment(figment)
    }

    /// The embedded defaults alone, ignoring the environment.
    pub fn defaults() -> Config {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
            .expect("the embedded default.toml is valid (checked by a unit test)")
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    /// Cross-field and range rules, each failing with a sentence.
    pub fn check(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError::Invalid(msg));
        if self.kafka.brokers.trim().is_empty() {
            return fail("kafka.brokers is empty; give at least one host:port".into());
        }
        if self.kafka.partitions == 0 {
            return fail("kafka.partitions is 0; a topic needs at least one partition".into());
        }
        if self.kafka.replication_factor == 0 {
            return fail("kafka.replication-factor is 0; it must be at least 1".into());
        }
        if self.kafka.events_topic == self.kafka.dead_letter_topic {
            return fail(format!(
                "kafka.events-topic and kafka.dead-letter-topic are both {:?}; they must differ",
                self.kafka.events_topic
            ));
        }
        if self.kafka.producer.queue_max_messages == 0 {
            return fail("kafka.producer.queue-max-messages is 0; it must be at least 1".into());
        }
        let w = &self.ranking.weights;
        for (name, value) in [
            ("like", w.like),
            ("comment", w.comment),
            ("share", w.share),
            ("save", w.save),
            ("negative", w.negative),
            ("watch-per-second", w.watch_per_second),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return fail(format!(
                    "ranking.weights.{name} is {value}; a weight is a finite number of at least 0 \
                     (negative feedback is subtracted by its weight)"
                ));
            }
        }
        let r = &self.ranking.serving;
        for (name, value) in [
            ("author-decay", r.author_decay),
            ("media-decay", r.media_decay),
            ("seen-factor", r.seen_factor),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return fail(format!(
                    "ranking.serving.{name} is {value}; a factor is above 0 and at most 1"
                ));
            }
        }
        if !(r.freshness_weight.is_finite() && r.freshness_weight >= 0.0) {
            return fail(format!(
                "ranking.serving.freshness-weight is {}; it must be a finite number of at least 0",
                r.freshness_weight
            ));
        }
        for (name, value) in [
            ("candidates", r.candidates),
            ("author-cap", r.author_cap),
            ("page-window", r.page_window),
        ] {
            if value == 0 {
                return fail(format!(
                    "ranking.serving.{name} is 0; it must be at least 1"
                ));
            }
        }
        if r.freshness_half_life.is_zero() || r.reload_every.is_zero() || r.session_ttl.is_zero() {
            return fail(
                "ranking.serving.freshness-half-life, reload-every and session-ttl must be above 0"
                    .into(),
            );
        }
        let prefix = &self.redis.key_prefix;
        if !crate::keys::is_valid_prefix(prefix) {
            return fail(format!(
                "redis.key-prefix {prefix:?} must be non-empty and made of {}",
                crate::keys::PREFIX_CHARS
            ));
        }
        if self.ingest.max_batch_events == 0 {
            return fail("ingest.max-batch-events is 0; it must be at least 1".into());
        }
        if self.ingest.max_batch_events > self.kafka.producer.queue_max_messages as usize {
            return fail(format!(
                "ingest.max-batch-events ({}) must not exceed kafka.producer.queue-max-messages ({}): \
                 a batch larger than the queue could never be admitted",
                self.ingest.max_batch_events, self.kafka.producer.queue_max_messages
            ));
        }
        if self.ingest.request_timeout <= self.kafka.producer.message_timeout {
            return fail(format!(
                "ingest.request-timeout ({:?}) must be longer than kafka.producer.message-timeout \
                 ({:?}), so a request outlives the delivery it waits for",
                self.ingest.request_timeout, self.kafka.producer.message_timeout
            ));
        }
        let h = self.fanout.celebrity_hysteresis;
        if !(0.0..1.0).contains(&h) {
            return fail(format!(
                "fanout.celebrity-hysteresis is {h}; it must be in [0, 1)"
            ));
        }
        if self.fanout.celebrity_threshold == 0 {
            return fail("fanout.celebrity-threshold is 0; it must be at least 1".into());
        }
        if self.fanout.recent_posts_cap == 0 {
            return fail("fanout.recent-posts-cap is 0; it must be at least 1".into());
        }
        if self.runtime.lease_ttl < Duration::from_millis(300) {
            return fail(format!(
                "runtime.lease-ttl is {:?}; it must be at least 300ms so workers can renew in time",
                self.runtime.lease_ttl
            ));
        }
        if self.runtime.batch_max_events == 0 {
            return fail("runtime.batch-max-events is 0; it must be at least 1".into());
        }
        if self.serving.jwt_secret.len() < 16 {
            return fail(
                "serving.jwt-secret is shorter than 16 bytes; HS256 needs a long random secret"
                    .into(),
            );
        }
        if self.engagement.dedupe_window.is_zero() {
            return fail("engagement.dedupe-window is 0; it must be at least 1ms".into());
        }
        if self.engagement.affinity_half_life < Duration::from_secs(60) {
            return fail("engagement.affinity-half-life must be at least 1m".into());
        }
        if self.notifications.window.is_zero() {
            return fail("notifications.window is 0; it must be at least 1ms".into());
        }
        if self.notifications.kept == 0 || self.notifications.latest_actors == 0 {
            return fail(
                "notifications.kept and notifications.latest-actors must be at least 1".into(),
            );
        }
        if self.trending.min_accounts == 0 {
            return fail("trending.min-accounts is 0; it must be at least 1".into());
        }
        if self.stories.sweep_every < Duration::from_secs(1) {
            return fail("stories.sweep-every must be at least 1s".into());
        }
        if self.fanout.timeline_cap == 0 {
            return fail("fanout.timeline-cap is 0; it must be at least 1".into());
        }
        if self.warehouse.root.as_os_str().is_empty() {
            return fail("warehouse.root is empty; give the folder that holds the tables".into());
        }
        if self.warehouse.roll_size == 0 {
            return fail("warehouse.roll-size is 0; it must be at least 1 byte".into());
        }
        if self.warehouse.roll_interval < MIN_ROLL_INTERVAL {
            return fail(format!(
                "warehouse.roll-interval is {:?}; it must be at least {MIN_ROLL_INTERVAL:?}, since \
                 every commit fsyncs its files",
                self.warehouse.roll_interval
            ));
        }
        if self.warehouse.row_group_size == 0 {
            return fail("warehouse.row-group-size is 0; it must be at least 1 row".into());
        }
        if self.warehouse.compact_target_size == 0 {
            return fail("warehouse.compact-target-size is 0; it must be at least 1 byte".into());
        }
        Ok(())
    }

    /// The keyspace of this deployment.
    pub fn keyspace(&self) -> crate::keys::Keyspace {
        crate::keys::Keyspace::new(self.redis.key_prefix.clone())
    }
}

/// `APERTURE__KAFKA__EVENTS_TOPIC` → `kafka.events-topic`: `__` separates sections, a single
/// `_` stands for the dash of kebab-case keys.
fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX).map(|key| key.as_str().replace("__", ".").replace('_', "-").into())
}

#[cfg(test)]
// figment's `Jail` closures must return `figment::Error`, which is large; not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn embedded_defaults_are_valid() {
        let c = Config::defaults();
        assert_eq!(c.kafka.partitions, 8);
        assert_eq!(c.fanout.celebrity_threshold, 10_000);
        assert_eq!(c.fanout.timeline_cap, 800);
        assert_eq!(c.kafka.producer.linger, Duration::from_millis(5));
        assert_eq!(c.warehouse.root, PathBuf::from(".aperture/warehouse"));
        assert_eq!(c.warehouse.roll_size, 128 << 20);
        assert_eq!(c.warehouse.roll_interval, Duration::from_secs(60));
        assert_eq!(c.warehouse.row_group_size, 262_144);
        assert_eq!(c.warehouse.compact_target_size, 256 << 20);
    }

    #[test]
    fn warehouse_rules_fail_with_the_key_named() {
        for (var, value, key) in [
            ("APERTURE__WAREHOUSE__ROOT", "", "warehouse.root"),
            ("APERTURE__WAREHOUSE__ROLL_SIZE", "0", "warehouse.roll-size"),
            (
                "APERTURE__WAREHOUSE__ROLL_INTERVAL",
                "10ms",
                "warehouse.roll-interval",
            ),
            (
                "APERTURE__WAREHOUSE__ROW_GROUP_SIZE",
                "0",
                "warehouse.row-group-size",
            ),
            (
                "APERTURE__WAREHOUSE__COMPACT_TARGET_SIZE",
                "0",
                "warehouse.compact-target-size",
            ),
        ] {
            Jail::expect_with(|jail| {
                jail.set_env(var, value);
                let err = Config::load(None).unwrap_err().to_string();
                assert!(err.contains(key), "{var}={value:?}: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "a.toml",
                "[kafka]\npartitions = 3\nclient-id = \"from-file\"\n",
            )?;
            jail.set_env("APERTURE__KAFKA__CLIENT_ID", "from-env");
            jail.set_env("APERTURE__FANOUT__CELEBRITY_THRESHOLD", "500");
            jail.set_env("APERTURE__KAFKA__PRODUCER__LINGER", "20ms");
            let c = Config::load(Some(Path::new("a.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.kafka.partitions, 3);
            assert_eq!(c.kafka.client_id, "from-env");
            assert_eq!(c.fanout.celebrity_threshold, 500);
            assert_eq!(c.kafka.producer.linger, Duration::from_millis(20));
            Ok(())
        });
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[kafka]\nbrokerz = \"x\"\n")?;
            let err = Config::load(Some(Path::new("a.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("brokerz"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn cross_field_rules_fail_with_a_sentence() {
        Jail::expect_with(|jail| {
            jail.set_env("APERTURE__REDIS__KEY_PREFIX", "a{b}");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("redis.key-prefix"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("APERTURE__INGEST__REQUEST_TIMEOUT", "1s");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("ingest.request-timeout"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        assert!(Config::load(Some(Path::new("/nonexistent/aperture.toml"))).is_err());
    }
}
