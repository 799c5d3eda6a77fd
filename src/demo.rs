//! `aperture demo`: the main job on embedded defaults. Today: create the topics, start the ingest
//! API on localhost, generate a workload and send it through the API as an app would, then read
//! the events back from the topic and show where they landed.

use std::time::Duration;

use anyhow::{Context, ensure};
use aperture_ingest::api::{self, AppState};
use aperture_ingest::generate::{self, Spec, Summary, sink};
use aperture_ingest::kafka::{self, Watermarks};
use aperture_schema::{Config, EventKind, Origin, decode};
use clap::Args;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the generated workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Users in the generated workload.
    #[arg(long, default_value_t = 10_000)]
    users: u32,
    /// Simulated days of activity.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// Exit once the events are shown instead of keeping the API up until ctrl-c.
    #[arg(long)]
    exit: bool,
}

pub async fn run(
    config: &Config,
    args: DemoArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    kafka::ensure_topics(config)
        .await
        .context("while creating topics")?;
    let state = AppState::new(config)?;
    let producer = state.producer.clone();
    let listener = tokio::net::TcpListener::bind(config.ingest.listen)
        .await
        .with_context(|| format!("while binding the ingest API to {}", config.ingest.listen))?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(
        axum::serve(listener, api::app(state))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    println!("ingest API on {base_url}");

    let topic = config.kafka.events_topic.clone();
    let before = snapshot(config, &topic).await?;

    let spec = Spec {
        seed: args.seed,
        users: args.users,
        days: args.days,
        celebrity_threshold: config.fanout.celebrity_threshold,
        ..Spec::default()
    };
    let workload = generate::generate(&spec);
    println!("{}", Summary::of(&workload, &spec));

    let bar = sink::progress_bar(workload.events.len() as u64, "posting");
    let report = sink::to_http(&base_url, &workload.events, 1000, 4, &bar).await?;
    println!(
        "\ningest API stored {} events ({} rejected) in {:.1?}: {:.0} events/s",
        report.accepted,
        report.rejected,
        report.elapsed,
        report.events_per_second()
    );

    let after = snapshot(config, &topic).await?;
    println!("\n{topic}: partition, events added by this run, total");
    for w in &after {
        let old = before
            .iter()
            .find(|b| b.partition == w.partition)
            .map_or(0, |b| b.high);
        println!("  {:>3} {:>10} {:>10}", w.partition, w.high - old, w.high);
    }
    let kafka_cfg = config.kafka.clone();
    let (b, a, t) = (before.clone(), after.clone(), topic.clone());
    let records = tokio::task::spawn_blocking(move || {
        kafka::read_between(&kafka_cfg, &t, &b, &a, Duration::from_secs(120))
    })
    .await??;
    let mut decoded = 0usize;
    let mut shown = Vec::new();
    for r in &records {
        let envelope = decode(&r.payload, Origin::Topic)
            .with_context(|| format!("event at {}/{} does not decode", r.partition, r.offset))?;
        decoded += 1;
        if matches!(
            envelope.kind(),
            EventKind::PostCreated | EventKind::Like | EventKind::Follow
        ) && !shown.iter().any(|(k, _)| *k == envelope.kind())
        {
            shown.push((
                envelope.kind(),
                String::from_utf8_lossy(&r.payload).into_owned(),
            ));
        }
    }
    ensure!(
        decoded as u64 == report.accepted,
        "read back {decoded} events but the API stored {}",
        report.accepted
    );
    println!("\nread back all {decoded} events from the topic; for example:");
    for (_, json) in &shown {
        println!("  {json}");
    }
    println!(
        "\ntry it:\n  curl -s {base_url}/healthz\n  curl -s {base_url}/metrics | grep aperture_\n  \
         curl -s -XPOST {base_url}/v1/events -H 'content-type: application/json' -d \
         '{{\"v\":1,\"event_id\":\"demo-1\",\"type\":\"follow\",\"actor_id\":1,\"ts\":{},\"target_id\":2}}'",
        now_ms()
    );
    if args.exit {
        shutdown.cancel();
    } else {
        println!("\nthe ingest API keeps running; ctrl-c stops it");
    }
    server.await.context("the ingest server task failed")??;
    tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30))).await??;
    Ok(())
}

async fn snapshot(config: &Config, topic: &str) -> anyhow::Result<Vec<Watermarks>> {
    let kafka_cfg = config.kafka.clone();
    let topic = topic.to_owned();
    Ok(tokio::task::spawn_blocking(move || {
        kafka::watermarks(&kafka_cfg, &topic, Duration::from_secs(10))
    })
    .await??)
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}
