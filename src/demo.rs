//! `aperture demo`: the main job on embedded defaults, the whole pipeline on localhost. Create
//! the topics, start the ingest API and a stream worker running every job, generate a workload
//! and send it through the API as apps would, read the events back from the topic, wait until
//! the jobs have applied all of them, start the read API, show a real user's home feed and the
//! trending tags, and print ready-to-run `curl` commands for every read endpoint.

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
    /// Simulated days of activity. The span ends a few minutes before the demo starts, so
    /// its stories are still live (24 h of the clock) and its events pass the API's clock check.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// Exit once the feed is shown instead of keeping the APIs up until ctrl-c.
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

    let jobs = aperture_stream_jobs::jobs::all();
    let job_names: Vec<&'static str> = jobs.iter().map(|j| j.name()).collect();
    let worker_config = config.clone();
    let worker_token = shutdown.child_token();
    let worker_stop = worker_token.clone();
    let worker = tokio::task::spawn_blocking(move || {
        aperture_stream_jobs::runtime::run(&worker_config, jobs, worker_token)
    });
    println!("stream worker running {}", job_names.join(", "));

    let topic = config.kafka.events_topic.clone();
    let before = snapshot(config, &topic).await?;

    let mut spec = Spec {
        seed: args.seed,
        users: args.users,
        days: args.days,
        celebrity_threshold: config.fanout.celebrity_threshold,
        ..Spec::default()
    };
    spec.start_ms = recent_start(&spec, now_ms());
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

    let warehouse = fill_warehouse(config, &shutdown).await?;
    wait_applied(config, &job_names, &after, &shutdown).await?;
    let read_state = aperture_serving::AppState::new(config).await?;
    let store = read_state.store.clone();
    let ranker = read_state.ranker.clone();
    // Models trained from here on (the one below, `aperture rank train` later) are picked up
    // without a restart.
    let reloader = read_state.spawn_model_reloader(config, shutdown.clone());
    let read_listener = tokio::net::TcpListener::bind(config.serving.listen)
        .await
        .with_context(|| format!("while binding the read API to {}", config.serving.listen))?;
    let read_url = format!("http://{}", read_listener.local_addr()?);
    let read_server = tokio::spawn(
        axum::serve(
            read_listener,
            aperture_serving::app(read_state, config.serving.request_timeout),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future(),
    );
    println!("read API on {read_url}");

    let viewer = pick_viewer(&store, &workload.events).await?;
    let token = aperture_serving::auth::Tokens::new(&config.serving.jwt_secret)
        .mint(viewer, config.serving.token_ttl);
    show_page(
        &read_url,
        &token,
        "/v1/feed",
        &format!("the home feed of user {viewer}"),
    )
    .await?;
    show_trending(&read_url).await?;
    show_warehouse(config).await?;
    show_ranking(config, &workload).await?;
    // Serve with the model just trained now rather than at the next reload tick.
    match ranker.models.reload() {
        Ok(Some(version)) => println!("the read API now ranks with {version}"),
        Ok(None) => println!(
            "the read API keeps its model (none newer was accepted): Explore and Reels score by \
             the popularity prior until one is"
        ),
        Err(e) => println!("the read API could not load the model: {e}"),
    }
    for (path, title) in [
        ("/v1/feed?order=ranked&", "ranked"),
        ("/v1/explore?", "Explore"),
        ("/v1/reels?", "Reels"),
    ] {
        show_page(
            &read_url,
            &token,
            path,
            &format!("{title} for user {viewer}"),
        )
        .await?;
    }
    println!(
        "\ntry it:\n  curl -s -H 'authorization: Bearer {token}' '{read_url}/v1/feed?limit=5'\n  \
         curl -s -H 'authorization: Bearer {token}' '{read_url}/v1/feed?order=ranked&limit=5'\n  \
         curl -s -H 'authorization: Bearer {token}' '{read_url}/v1/explore?limit=5'\n  \
         curl -s -H 'authorization: Bearer {token}' '{read_url}/v1/reels?limit=5'\n  \
         curl -s -H 'authorization: Bearer {token}' {read_url}/v1/users/{viewer}\n  \
         curl -s -H 'authorization: Bearer {token}' '{read_url}/v1/notifications?limit=5'\n  \
         curl -s -H 'authorization: Bearer {token}' {read_url}/v1/notifications/unread\n  \
         curl -s -H 'authorization: Bearer {token}' {read_url}/v1/stories/tray\n  \
         curl -s '{read_url}/v1/trending?window=1h&limit=10'\n  \
         curl -s '{read_url}/v1/trending?window=24h&limit=10'\n  \
         curl -s {read_url}/openapi.json\n  curl -s {base_url}/metrics | grep aperture_\n  \
         curl -s -XPOST {base_url}/v1/events -H 'content-type: application/json' -d \
         '{{\"v\":1,\"event_id\":\"demo-{}\",\"type\":\"follow\",\"actor_id\":1,\"ts\":{},\"target_id\":2}}'\n  \
         (more tokens: aperture token <user_id>)",
        now_ms(),
        now_ms()
    );
    show_dashboard(&read_url, config, &workload.events);
    if args.exit {
        shutdown.cancel();
    } else {
        println!(
            "\nthe ingest API, the stream worker and the read API keep running; ctrl-c stops them"
        );
    }
    server.await.context("the ingest server task failed")??;
    read_server.await.context("the read server task failed")??;
    reloader.await.context("the model reloader panicked")?;
    worker_stop.cancel();
    worker.await.context("the stream worker panicked")??;
    warehouse.await.context("the warehouse sink panicked")??;
    tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(30))).await??;
    Ok(())
}

/// The creators' dashboard of the generated day's busiest creator (most views of their posts
/// by others on the workload's last day), and a sign-in link for it.
fn show_dashboard(read_url: &str, config: &Config, events: &[aperture_schema::Envelope]) {
    use aperture_schema::state::utc_day;
    let Some(last) = events.iter().map(|e| e.ts).max() else {
        return;
    };
    let (first, last_day) = (
        utc_day(events.iter().map(|e| e.ts).min().unwrap_or(last)),
        utc_day(last),
    );
    let mut views: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for e in events {
        if let aperture_schema::Event::View(v) = &e.event
            && v.author_id != e.actor_id
            && utc_day(e.ts) == last_day
        {
            *views.entry(v.author_id).or_default() += 1;
        }
    }
    let Some((&creator, &n)) = views
        .iter()
        .max_by_key(|(a, n)| (**n, std::cmp::Reverse(**a)))
    else {
        return;
    };
    let token = aperture_serving::auth::Tokens::new(&config.serving.jwt_secret)
        .mint(creator, config.serving.token_ttl);
    // The generated span lies in the past, so the link names it as a custom range.
    let next = format!("/dashboard?range=custom&from={first}&to={last_day}");
    let next: String = next
        .bytes()
        .map(|b| match b {
            b'?' => "%3F".to_owned(),
            b'&' => "%26".to_owned(),
            b'=' => "%3D".to_owned(),
            _ => (b as char).to_string(),
        })
        .collect();
    println!(
        "\nthe creators' dashboard: user {creator} is the busiest creator of {last_day} ({n} \
         views by others); sign in as them (the form is pre-filled) at\n  \
         {read_url}/login?next={next}&token={token}\n  then {read_url}/dashboard"
    );
}

/// Drains the topic into the warehouse (so the SQL below sees this run), then leaves a sink
/// running that keeps it current until shutdown.
async fn fill_warehouse(
    config: &Config,
    shutdown: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let root = config.warehouse.root.display().to_string();
    let sink_config = config.clone();
    let token = shutdown.child_token();
    let drained =
        tokio::task::spawn_blocking(move || aperture_warehouse::sink::drain(&sink_config, token))
            .await
            .context("the warehouse sink panicked")?
            .context("while filling the warehouse")?;
    println!(
        "\nwarehouse sink wrote {} rows to {root} in {} commits",
        drained.rows, drained.commits
    );
    let sink_config = config.clone();
    let token = shutdown.child_token();
    Ok(tokio::task::spawn_blocking(move || {
        aperture_warehouse::sink::run(&sink_config, token)
            .map(drop)
            .context("while running the warehouse sink")
    }))
}

/// The busiest creators of the warehouse's last day, from the `creator_daily` rollup.
async fn show_warehouse(config: &Config) -> anyhow::Result<()> {
    use aperture_warehouse::sql::{self, Format};
    const TOP_CREATORS: &str = "SELECT author_id, dt, views, reach, interactions, follows \
         FROM creator_daily WHERE dt = (SELECT max(dt) FROM creator_daily) \
         ORDER BY interactions DESC, author_id LIMIT 5";
    let ctx = sql::context(&config.warehouse.root)
        .await
        .context("while opening the warehouse")?;
    let (schema, batches) = sql::query(&ctx, TOP_CREATORS).await?;
    println!("\nbusiest creators of the last day (aperture sql, creator_daily rollup):");
    let mut out = Vec::new();
    sql::output::write(&schema, &batches, Format::Table, &mut out)?;
    print!("{}", String::from_utf8_lossy(&out));
    println!(
        "more: aperture sql   (a shell; tables users, follows, posts, likes, views, … and \
         the rollups creator_daily, creator_top_posts, hashtag_daily, follower_growth, post_likes)"
    );
    Ok(())
}

/// Trains a ranking model on the warehouse and prints its offline table, with the generator's
/// truth as the ceiling when it covers the held-out impressions (a warehouse that also holds
/// earlier runs' workloads is evaluated without it).
async fn show_ranking(config: &Config, workload: &generate::Workload) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let events = aperture_warehouse::replay::events(&config.warehouse.root)
        .await
        .context("while reading the warehouse back for training")?;
    let truth: std::collections::HashMap<_, _> = workload
        .impressions
        .iter()
        .map(|t| (t.event_id.clone(), t.p))
        .collect();
    let artifact = match aperture_ranking::train(&events, Some(&truth), config) {
        Err(aperture_ranking::RankError::Eval(aperture_ranking::eval::EvalError::Truth {
            ..
        })) => aperture_ranking::train(&events, None, config)?,
        other => other?,
    };
    let path = artifact.save(&config.ranking.models_dir)?;
    println!(
        "\nranking model {} trained on {} impressions of the warehouse in {:.1?} ({}), \
         written to {}; its offline table on the held-out end (aperture rank eval):",
        artifact.version,
        artifact.train.impressions,
        started.elapsed(),
        if artifact.accepted {
            "accepted"
        } else {
            "not accepted"
        },
        path.display()
    );
    if let Some(report) = &artifact.metrics {
        print!("{report}");
    }
    Ok(())
}

/// Waits until every job has applied every partition up to `marks`, printing progress.
async fn wait_applied(
    config: &Config,
    job_names: &[&str],
    marks: &[Watermarks],
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let client = redis::Client::open(config.redis.url.as_str())?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let keys = config.keyspace();
    let total: i64 = marks.iter().map(|w| w.high).sum::<i64>() * job_names.len() as i64;
    let started = std::time::Instant::now();
    let mut last_print = started;
    loop {
        let mut behind = 0i64;
        for job in job_names {
            for w in marks {
                let applied: Option<i64> = redis::cmd("GET")
                    .arg(keys.job_offset(job, w.partition as u32))
                    .query_async(&mut con)
                    .await?;
                behind += (w.high - applied.unwrap_or(0)).max(0);
            }
        }
        if behind == 0 {
            println!(
                "\nthe jobs applied every event in {:.1?}",
                started.elapsed()
            );
            return Ok(());
        }
        if shutdown.is_cancelled() {
            anyhow::bail!("stopped while the jobs were catching up");
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            println!("jobs catching up: {behind} of {total} job-events to go");
            last_print = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A user whose home feed has something in it: the most active followers first.
async fn pick_viewer(
    store: &aperture_serving::store::Store,
    events: &[aperture_schema::Envelope],
) -> anyhow::Result<u64> {
    let mut follows: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for e in events {
        if e.kind() == EventKind::Follow {
            *follows.entry(e.actor_id).or_default() += 1;
        }
    }
    let mut by_follows: Vec<(usize, u64)> = follows.into_iter().map(|(u, n)| (n, u)).collect();
    by_follows.sort_unstable_by(|a, b| b.cmp(a));
    for &(_, user) in by_follows.iter().take(50) {
        let page = aperture_serving::feed::page(store, user, None, 5).await?;
        if page.items.len() == 5 {
            return Ok(user);
        }
    }
    by_follows
        .first()
        .map(|&(_, u)| u)
        .context("the workload has no follows, so no feed to show")
}

/// Reads the viewer's first page over HTTP, as an app would, and prints it.
/// The first five items of `path` (ending in `?` or `&`, or a bare path) for the token's user.
async fn show_page(read_url: &str, token: &str, path: &str, title: &str) -> anyhow::Result<()> {
    let sep = if path.ends_with(['?', '&']) { "" } else { "?" };
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{read_url}{path}{sep}limit=5"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("\n{title}, first page:");
    for item in page["items"].as_array().into_iter().flatten() {
        let caption: String = item["caption"]
            .as_str()
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .take(50)
            .collect();
        println!(
            "  {:>10} {:<10} by @{:<16} {:>5} likes  {caption}",
            item["source"].as_str().unwrap_or(""),
            item["media_type"].as_str().unwrap_or(""),
            item["author_username"].as_str().unwrap_or(""),
            item["like_count"],
        );
    }
    Ok(())
}

async fn show_trending(read_url: &str) -> anyhow::Result<()> {
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{read_url}/v1/trending?window=1h&limit=5"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("\ntrending in the last hour of the workload (score, posts, usual posts per hour):");
    for item in page["items"].as_array().into_iter().flatten() {
        println!(
            "  #{:<20} {:>7.1} {:>6} {:>8.1}",
            item["tag"].as_str().unwrap_or(""),
            item["score"].as_f64().unwrap_or(0.0),
            item["count"],
            item["previous"].as_f64().unwrap_or(0.0),
        );
    }
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

/// Where a workload of `spec`'s span starts so that it ends [`SPAN_ENDS_BEFORE_NOW_MS`] before
/// `now_ms`, on a whole minute. The generator's default start is a fixed day in the past, which
/// keeps tests reproducible; the demo wants "now", or every story would have expired before it
/// is shown and the tray would be empty.
fn recent_start(spec: &Spec, now_ms: u128) -> i64 {
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let start = now - SPAN_ENDS_BEFORE_NOW_MS - spec.span_ms();
    start - start.rem_euclid(MINUTE_MS)
}

/// Events that follow another (a like after its view) may land a few minutes past the span's
/// end; ending it this long before now keeps them all in the past.
const SPAN_ENDS_BEFORE_NOW_MS: i64 = 10 * MINUTE_MS;

const MINUTE_MS: i64 = 60_000;

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_schema::state::STORY_TTL_MS;

    #[test]
    fn a_recent_workload_ends_in_the_past_and_keeps_its_last_day_of_stories_live() {
        let now: i64 = 1_795_000_123_456;
        let spec = Spec {
            users: 300,
            days: 1.0,
            ..Spec::default()
        };
        let start = recent_start(&spec, now as u128);
        assert_eq!(start % MINUTE_MS, 0, "starts on a whole minute");
        assert!(spec.span_ms() + SPAN_ENDS_BEFORE_NOW_MS <= now - start);
        assert!(now - start < spec.span_ms() + SPAN_ENDS_BEFORE_NOW_MS + MINUTE_MS);

        let workload = generate::generate(&Spec {
            start_ms: start,
            ..spec
        });
        let newest = workload.events.iter().map(|e| e.ts).max().expect("events");
        assert!(newest <= now, "an event at {newest} is after now ({now})");
        let live_stories = workload
            .events
            .iter()
            .filter(|e| e.kind() == EventKind::StoryCreated && e.ts > now - STORY_TTL_MS)
            .count();
        assert!(live_stories > 0, "no story younger than a day");
    }
}
