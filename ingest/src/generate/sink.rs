//! Where a generated workload goes: an NDJSON file (or stdout), Kafka directly (the fast path),
//! or the ingest API over HTTP (the path apps take).
//!
//! Every sink keeps each actor's events in order: Kafka through one idempotent producer fed in
//! event-time order, HTTP through lanes that each own a fixed set of actors and send their
//! batches one after another.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aperture_schema::{Config, Envelope};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::kafka::producer_config;

/// What a send achieved.
#[derive(Debug, Clone, Default)]
pub struct SendReport {
    /// Events stored (acknowledged by the broker).
    pub accepted: u64,
    /// Events the ingest API refused as invalid.
    pub rejected: u64,
    pub elapsed: Duration,
}

impl SendReport {
    pub fn events_per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A progress bar on an interactive terminal; hidden in CI and when stderr is not a terminal.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() || std::env::var_os("CI").is_some() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .expect("the template is a constant and valid")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Writes one event per line.
pub fn to_writer(events: &[Envelope], mut out: impl Write, bar: &ProgressBar) -> io::Result<()> {
    for (i, e) in events.iter().enumerate() {
        out.write_all(&e.to_json())?;
        out.write_all(b"\n")?;
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
    }
    bar.finish_and_clear();
    out.flush()
}

/// Most deliveries awaited at once by the Kafka sink; bounds memory whatever the workload size.
const KAFKA_WINDOW: usize = 20_000;

/// Produces every event straight to the events topic with the same producer settings as the
/// ingest API, and waits for every acknowledgement.
pub async fn to_kafka(
    config: &Config,
    events: &[Envelope],
    bar: &ProgressBar,
) -> anyhow::Result<SendReport> {
    let producer: FutureProducer = producer_config(&config.kafka)
        .create()
        .context("while creating the producer")?;
    let topic = &config.kafka.events_topic;
    let started = Instant::now();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(KAFKA_WINDOW);
    let mut report = SendReport::default();
    for e in events {
        if pending.len() >= KAFKA_WINDOW {
            await_one(&mut pending, &mut report).await?;
            bar.set_position(report.accepted);
        }
        let key = e.actor_id.to_string();
        let payload = e.to_json();
        let mut record = FutureRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                // The local queue is full: make room by waiting for the oldest delivery.
                Err((_, back)) if !pending.is_empty() => {
                    record = back;
                    await_one(&mut pending, &mut report).await?;
                }
                Err((error, _)) => bail!("could not enqueue an event: {error}"),
            }
        }
    }
    while !pending.is_empty() {
        await_one(&mut pending, &mut report).await?;
        if report.accepted % 4096 == 0 {
            bar.set_position(report.accepted);
        }
    }
    bar.finish_and_clear();
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn await_one(
    pending: &mut VecDeque<DeliveryFuture>,
    report: &mut SendReport,
) -> anyhow::Result<()> {
    let delivery = pending
        .pop_front()
        .expect("callers only wait when a delivery is pending");
    match delivery.await {
        Ok(Ok(_)) => {
            report.accepted += 1;
            Ok(())
        }
        Ok(Err((error, _))) => bail!("the broker did not store an event: {error}"),
        Err(_) => bail!("the producer shut down before the broker answered"),
    }
}

/// Posts the events to an ingest API (`base_url` like `http://127.0.0.1:8080`) as NDJSON
/// batches of `batch` events over `lanes` connections. An actor's events always go through the
/// same lane, in order, so per-actor order survives the concurrency. A batch answered with 503
/// is retried after `Retry-After`, only for the events not yet stored.
pub async fn to_http(
    base_url: &str,
    events: &[Envelope],
    batch: usize,
    lanes: usize,
    bar: &ProgressBar,
) -> anyhow::Result<SendReport> {
    let lanes = lanes.max(1);
    let batch = batch.max(1);
    let url = format!("{}/v1/events", base_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(lanes)
        .build()
        .context("while creating the HTTP client")?;
    let started = Instant::now();
    let mut total = SendReport::default();
    // Lanes move through the log in step, a round of two batches per lane at a time: an actor
    // always goes through the same lane (so their events stay in order), and no lane runs
    // ahead of the others in event time by more than a round, as a fleet of live clients would
    // not. Free-running lanes would drift hours apart on a simulated day, and every windowed
    // job would see most of one lane's events as late.
    for round in events.chunks(batch * lanes * ROUND_BATCHES) {
        let mut by_lane: Vec<Vec<&Envelope>> = vec![Vec::new(); lanes];
        for e in round {
            by_lane[(e.actor_id % lanes as u64) as usize].push(e);
        }
        let sends = by_lane.into_iter().map(|lane| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let mut report = SendReport::default();
                for chunk in lane.chunks(batch) {
                    post_batch(&client, &url, chunk, &mut report).await?;
                    bar.inc(chunk.len() as u64);
                }
                anyhow::Ok(report)
            }
        });
        for lane in futures::future::join_all(sends).await {
            let lane = lane?;
            total.accepted += lane.accepted;
            total.rejected += lane.rejected;
        }
    }
    bar.finish_and_clear();
    total.elapsed = started.elapsed();
    Ok(total)
}

/// Batches each lane sends per round: enough that a lane rarely waits on the others, few
/// enough that a round spans minutes of a simulated day, well inside any allowed lateness.
const ROUND_BATCHES: usize = 2;

/// Most attempts at one batch before the send gives up.
const HTTP_ATTEMPTS: u32 = 30;

async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    events: &[&Envelope],
    report: &mut SendReport,
) -> anyhow::Result<()> {
    let mut todo: Vec<&Envelope> = events.to_vec();
    for _attempt in 0..HTTP_ATTEMPTS {
        let mut body = Vec::with_capacity(todo.len() * 256);
        for e in &todo {
            // Apps do not send what ingest derives (hashtags, mentions).
            body.extend_from_slice(&e.to_app_json());
            body.push(b'\n');
        }
        let response = client
            .post(url)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .with_context(|| format!("while posting to {url}"))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(1), Duration::from_secs);
        let body: serde_json::Value = response
            .json()
            .await
            .with_context(|| format!("while reading the answer of {url} ({status})"))?;
        let Some(results) = body.get("results").and_then(|r| r.as_array()) else {
            if status.as_u16() == 503 {
                tokio::time::sleep(retry_after).await;
                continue;
            }
            bail!("{url} answered {status}: {body}");
        };
        let mut retry = Vec::new();
        for (result, event) in results.iter().zip(&todo) {
            match result.get("status").and_then(|s| s.as_str()) {
                Some("accepted") => report.accepted += 1,
                Some("rejected") => report.rejected += 1,
                _ => retry.push(*event),
            }
        }
        if retry.is_empty() {
            return Ok(());
        }
        todo = retry;
        tokio::time::sleep(retry_after).await;
    }
    bail!(
        "{} events were still not stored after {HTTP_ATTEMPTS} attempts",
        todo.len()
    )
}
