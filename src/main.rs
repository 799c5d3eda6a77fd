//! `aperture`: one binary, one subcommand per role. Each subcommand is a thin call into the
//! crate that owns the work; errors are printed once, here.

mod demo;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use aperture_ingest::generate::{self, Spec, Summary, sink};
use aperture_schema::{Config, Envelope};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of the system allocator: the read API and the workers allocate many small,
/// short-lived buffers from several threads, where glibc's malloc spent a fifth of the feed's
/// CPU time (measured with perf under `make bench-feed`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "aperture",
    version,
    about = "The data plane of an Instagram-like app"
)]
struct Cli {
    /// Configuration file layered over the embedded defaults (then APERTURE__* variables).
    #[arg(long, global = true, env = "APERTURE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ingest API: POST /v1/events into Kafka.
    Ingest,
    /// Generate a deterministic synthetic workload and send or write it.
    Generate(GenerateArgs),
    /// Create the events and dead-letter topics when missing.
    Topics,
    /// Run stream jobs as one worker of the consumer group (`all`, or job names: graph, fanout).
    Run {
        #[arg(required = true)]
        jobs: Vec<String>,
    },
    /// Run the read API: home feeds and profiles from Redis.
    Serve,
    /// Mint a development bearer token naming a user, signed with `serving.jwt-secret`.
    Token {
        /// The user the token names (its `sub`).
        user_id: u64,
    },
    /// The main job on embedded defaults: topics, ingest API, a generated workload sent through
    /// it, and the events read back from the topic.
    Demo(demo::DemoArgs),
    /// Print the effective configuration (defaults, file, environment) as TOML-like JSON.
    Config,
    /// The Parquet warehouse under `warehouse.root`: the sink job and compaction.
    #[command(subcommand)]
    Warehouse(WarehouseCommand),
    /// SQL over the warehouse (DataFusion): one query, or an interactive shell without one.
    Sql(SqlArgs),
    /// Ranking models: train one on the warehouse, or print a model's offline table.
    #[command(subcommand)]
    Rank(RankCommand),
    /// Public datasets converted to events and sent like a generated workload.
    #[command(subcommand)]
    Dataset(DatasetCommand),
}

/// `aperture dataset …`: thin wiring into `aperture_ingest::movielens`.
#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// MovieLens 100K in RecBole's atomic format (the `ml-100k` folder the `recbole` 1.2.1
    /// wheel ships): users, a post per movie, a view per rating, likes, saves and hides.
    Movielens {
        /// The folder holding the dataset's `.item` and `.inter` files.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        send: SendArgs,
    },
}

/// `aperture rank …`: thin wiring into `aperture_ranking`.
#[derive(Debug, Subcommand)]
enum RankCommand {
    /// Train the multi-task model on the warehouse (all but the last `ranking.holdout-days`),
    /// print its offline table on the held-out days and write it to `ranking.models-dir`,
    /// accepted when it beats every baseline on the AUC of every task the held-out days measure.
    Train(RankArgs),
    /// Print the offline table of a model (the newest accepted one unless --model) on the
    /// warehouse's held-out days.
    Eval {
        #[command(flatten)]
        args: RankArgs,
        /// The artifact to evaluate.
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct RankArgs {
    /// The generator's truth for the warehouse's workload (`aperture generate --truth`): adds
    /// the ceiling to the table.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Exit with an error unless, on every task the held-out days measure, the model's AUC
    /// leads the best baseline's by at least this much (a gate for CI).
    #[arg(long)]
    min_auc_margin: Option<f64>,
}

#[derive(Debug, Args)]
struct SqlArgs {
    /// The query; without it, statements are read from stdin (a prompt on a terminal).
    query: Option<String>,
    /// table, csv, json (one object per line) or parquet.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "parquet"])]
    format: String,
    /// Write the result to this file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// `aperture warehouse …`: thin wiring into `aperture_warehouse`.
#[derive(Debug, Subcommand)]
enum WarehouseCommand {
    /// Consume the events topic into Hive-partitioned Parquet, exactly once, until ctrl-c or
    /// SIGTERM (which commit what is buffered first). Metrics on `warehouse.metrics-listen`.
    Sink {
        /// Stop once every partition is read up to where it ended at start (a backfill).
        #[arg(long)]
        drain: bool,
    },
    /// Merge each (table, day)'s small files into large sorted ones; safe beside a running sink,
    /// idempotent, atomic for readers.
    Compact {
        /// Only this table (users, follows, posts, stories, likes, comments, shares, saves,
        /// views, negative_feedback).
        #[arg(long)]
        table: Option<String>,
        /// Only this day, YYYY-MM-DD.
        #[arg(long)]
        dt: Option<String>,
    },
    /// Print the data dictionary (Markdown) generated from the table and rollup definitions.
    Dictionary,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Destination {
    /// An NDJSON file (`--out`) or stdout.
    File,
    /// The events topic, straight through a producer (the fast path).
    Kafka,
    /// The ingest API (`--url`), as apps send events.
    Http,
}

/// Where events go, for every command that makes them.
#[derive(Debug, Args)]
struct SendArgs {
    /// Where the events go.
    #[arg(long, value_enum, default_value_t = Destination::File)]
    to: Destination,
    /// Output file for `--to file` (stdout when absent or `-`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Base URL of the ingest API for `--to http`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Events per HTTP request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent HTTP connections (each owns a fixed set of actors, keeping their order).
    #[arg(long, default_value_t = 4)]
    lanes: usize,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Seed; the same seed and sizes give byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of users.
    #[arg(long, default_value_t = 10_000)]
    users: u32,
    /// Simulated span of activity, in days.
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    #[command(flatten)]
    send: SendArgs,
    /// Also write the generator's truth, one line per `view` event (its true engagement
    /// probabilities, `aperture_schema::truth`), as NDJSON to this file: the ceiling of
    /// `aperture rank train --truth`.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Do not print the summary statistics.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", report::report(&error));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Runtime::new().context("while starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Ingest => {
                let shutdown = shutdown_on_signal();
                aperture_ingest::api::serve(&config, shutdown).await
            }
            Command::Generate(args) => generate_cmd(&config, args).await,
            Command::Dataset(DatasetCommand::Movielens { dir, send }) => {
                movielens_cmd(&config, &dir, &send).await
            }
            Command::Topics => {
                aperture_ingest::kafka::ensure_topics(&config).await?;
                println!(
                    "topics ready: {} and {} ({} partitions)",
                    config.kafka.events_topic,
                    config.kafka.dead_letter_topic,
                    config.kafka.partitions
                );
                Ok(())
            }
            Command::Run { jobs } => run_jobs(&config, &jobs, shutdown_on_signal()).await,
            Command::Serve => aperture_serving::serve(&config, shutdown_on_signal()).await,
            Command::Token { user_id } => {
                anyhow::ensure!(
                    (1..=aperture_schema::MAX_ID).contains(&user_id),
                    "user_id must be from 1 to 2^53-1, got {user_id}"
                );
                let tokens = aperture_serving::auth::Tokens::new(&config.serving.jwt_secret);
                println!("{}", tokens.mint(user_id, config.serving.token_ttl));
                Ok(())
            }
            Command::Demo(args) => demo::run(&config, args, shutdown_on_signal()).await,
            Command::Config => {
                println!("{}", serde_json::to_string_pretty(&config)?);
                Ok(())
            }
            Command::Warehouse(command) => warehouse_cmd(&config, command).await,
            Command::Sql(args) => sql_cmd(&config, args).await,
            Command::Rank(command) => rank_cmd(&config, command).await,
        }
    })
}

async fn rank_cmd(config: &Config, command: RankCommand) -> anyhow::Result<()> {
    let root = &config.warehouse.root;
    let args = match &command {
        RankCommand::Train(args) | RankCommand::Eval { args, .. } => args,
    };
    let truth = match &args.truth {
        Some(path) => Some(aperture_ranking::read_truth(path)?),
        None => None,
    };
    let events = aperture_warehouse::replay::events(root)
        .await
        .with_context(|| format!("while reading the warehouse at {}", root.display()))?;
    let dir = &config.ranking.models_dir;
    let min_margin = args.min_auc_margin;
    let gate = |report: &aperture_ranking::Report| -> anyhow::Result<()> {
        let Some(min) = min_margin else {
            return Ok(());
        };
        match report.auc_margin() {
            Some(m) if m >= min => Ok(()),
            Some(m) => anyhow::bail!(
                "the model leads the best baseline by {m:.3} AUC on its weakest task; \
                 --min-auc-margin asks for {min}"
            ),
            None => anyhow::bail!("no task of the held-out days has an AUC to compare"),
        }
    };
    match command {
        RankCommand::Train(_) => {
            let started = std::time::Instant::now();
            let artifact = aperture_ranking::train(&events, truth.as_ref(), config)?;
            let path = artifact.save(dir)?;
            if let Some(report) = &artifact.metrics {
                println!("{report}");
            }
            println!(
                "model {} trained on {} impressions in {:.1?}: {}; written to {}",
                artifact.version,
                artifact.train.impressions,
                started.elapsed(),
                if artifact.accepted {
                    "accepted (beats every baseline on every measured task's AUC)"
                } else {
                    "NOT accepted (a baseline matches it on some task's AUC)"
                },
                path.display()
            );
            if let Some(report) = &artifact.metrics {
                gate(report)?;
            }
        }
        RankCommand::Eval { model, .. } => {
            let (path, artifact) = match model {
                Some(path) => {
                    let a = aperture_ranking::Artifact::load(&path)?;
                    (path, a)
                }
                None => aperture_ranking::model::newest_accepted(dir)?.with_context(|| {
                    format!(
                        "no accepted model in {}; run `aperture rank train` first",
                        dir.display()
                    )
                })?,
            };
            let report = aperture_ranking::evaluate(&events, &artifact, truth.as_ref(), config)?;
            println!("model {} ({})", artifact.version, path.display());
            println!("{report}");
            gate(&report)?;
        }
    }
    Ok(())
}

async fn generate_cmd(config: &Config, args: GenerateArgs) -> anyhow::Result<()> {
    let spec = Spec {
        seed: args.seed,
        users: args.users,
        days: args.days,
        celebrity_threshold: config.fanout.celebrity_threshold,
        ..Spec::default()
    };
    let started = std::time::Instant::now();
    let workload = generate::generate(&spec);
    let generated_in = started.elapsed();
    if !args.quiet {
        eprintln!("{}", Summary::of(&workload, &spec));
        eprintln!("generated in {:.2?}", generated_in);
    }
    if let Some(path) = &args.truth {
        let io = || format!("while writing the truth to {}", path.display());
        let file = std::fs::File::create(path).with_context(io)?;
        let mut out = std::io::BufWriter::new(file);
        for t in &workload.impressions {
            serde_json::to_writer(&mut out, t).with_context(io)?;
            std::io::Write::write_all(&mut out, b"\n").with_context(io)?;
        }
        std::io::Write::flush(&mut out).with_context(io)?;
    }
    send(config, &workload.events, &args.send).await
}

/// `aperture dataset movielens`: read, convert, send.
async fn movielens_cmd(
    config: &Config,
    dir: &std::path::Path,
    to: &SendArgs,
) -> anyhow::Result<()> {
    let ml = aperture_ingest::movielens::read(dir)?;
    let events = aperture_ingest::movielens::to_events(&ml);
    eprintln!(
        "{} ratings of {} movies became {} events",
        ml.ratings.len(),
        ml.movies.len(),
        events.len()
    );
    send(config, &events, to).await
}

/// Sends `events` where `args` says, reporting what the destination stored.
async fn send(config: &Config, events: &[Envelope], args: &SendArgs) -> anyhow::Result<()> {
    let n = events.len() as u64;
    match args.to {
        Destination::File => {
            let bar = sink::progress_bar(n, "writing");
            match args.out.as_deref() {
                Some(path) if path.as_os_str() != "-" => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("while creating {}", path.display()))?;
                    sink::to_writer(events, std::io::BufWriter::new(file), &bar)?;
                }
                _ => sink::to_writer(events, std::io::stdout().lock(), &bar)?,
            }
        }
        Destination::Kafka => {
            aperture_ingest::kafka::ensure_topics(config).await?;
            let bar = sink::progress_bar(n, "producing");
            let report = sink::to_kafka(config, events, &bar).await?;
            eprintln!(
                "stored {} events on {} in {:.2?} ({:.0} events/s)",
                report.accepted,
                config.kafka.events_topic,
                report.elapsed,
                report.events_per_second()
            );
        }
        Destination::Http => {
            let bar = sink::progress_bar(n, "posting");
            let report = sink::to_http(&args.url, events, args.batch, args.lanes, &bar).await?;
            eprintln!(
                "ingest stored {} events, rejected {}, in {:.2?} ({:.0} events/s)",
                report.accepted,
                report.rejected,
                report.elapsed,
                report.events_per_second()
            );
        }
    }
    Ok(())
}

/// One worker running `names` until `shutdown`, with Prometheus metrics on
/// `runtime.metrics-listen`.
async fn run_jobs(
    config: &Config,
    names: &[String],
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let jobs = aperture_stream_jobs::jobs::by_names(names).map_err(anyhow::Error::msg)?;
    aperture_ingest::kafka::ensure_topics(config)
        .await
        .context("while creating topics")?;
    let metrics = aperture_ingest::metrics::install();
    let listener = tokio::net::TcpListener::bind(config.runtime.metrics_listen)
        .await
        .with_context(|| {
            format!(
                "while binding the metrics endpoint {}",
                config.runtime.metrics_listen
            )
        })?;
    tracing::info!(addr = %listener.local_addr()?, "worker metrics on /metrics");
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(metrics.render())),
    );
    let metrics_server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    let worker_config = config.clone();
    let token = shutdown.clone();
    let worker = tokio::task::spawn_blocking(move || {
        aperture_stream_jobs::runtime::run(&worker_config, jobs, token)
    });
    let result = worker.await.context("the worker thread panicked")?;
    shutdown.cancel();
    metrics_server.await??;
    Ok(result?)
}

async fn warehouse_cmd(config: &Config, command: WarehouseCommand) -> anyhow::Result<()> {
    use aperture_warehouse::compact;
    match command {
        WarehouseCommand::Sink { drain } => {
            let shutdown = shutdown_on_signal();
            let metrics = aperture_ingest::metrics::install();
            aperture_warehouse::metrics::describe();
            let listen = config.warehouse.metrics_listen;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("while binding the metrics endpoint {listen}"))?;
            tracing::info!(addr = %listener.local_addr()?, "sink metrics on /metrics");
            let router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || std::future::ready(metrics.render())),
            );
            let metrics_server = tokio::spawn(
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                    .into_future(),
            );
            let sink_config = config.clone();
            let token = shutdown.clone();
            let sink = tokio::task::spawn_blocking(move || {
                if drain {
                    aperture_warehouse::sink::drain(&sink_config, token)
                } else {
                    aperture_warehouse::sink::run(&sink_config, token)
                }
            });
            let result = sink.await.context("the sink thread panicked")?;
            shutdown.cancel();
            metrics_server.await??;
            let summary = result.context("while running the warehouse sink")?;
            eprintln!(
                "sink stopped after {} commits: {} rows, {} records skipped",
                summary.commits, summary.rows, summary.skipped
            );
            Ok(())
        }
        WarehouseCommand::Compact { table, dt } => {
            let filter = compact::Filter {
                table: table
                    .map(|name| {
                        aperture_schema::warehouse::Table::parse(&name)
                            .with_context(|| format!("--table {name:?} is not a warehouse table"))
                    })
                    .transpose()?,
                day: dt
                    .map(|d| {
                        aperture_warehouse::layout::parse_date(&d)
                            .with_context(|| format!("--dt {d:?} is not a date (YYYY-MM-DD)"))
                    })
                    .transpose()?,
            };
            let settings = compact::Settings::from_config(config);
            let report = tokio::task::spawn_blocking(move || compact::compact(&settings, &filter))
                .await
                .context("the compaction thread panicked")?
                .context("while compacting the warehouse")?;
            eprintln!(
                "compacted {} partitions: {} files into {}, {} rows, {} duplicate events left out",
                report.partitions, report.inputs, report.outputs, report.rows, report.duplicates
            );
            Ok(())
        }
        WarehouseCommand::Dictionary => {
            print!("{}", aperture_warehouse::sql::dictionary::markdown().await?);
            Ok(())
        }
    }
}

async fn sql_cmd(config: &Config, args: SqlArgs) -> anyhow::Result<()> {
    use aperture_warehouse::sql::{self, Format};
    use std::io::{IsTerminal, Write};
    // The value parser admits only the four names.
    let format = Format::parse(&args.format).context("--format")?;
    let ctx = sql::context(&config.warehouse.root)
        .await
        .context("while opening the warehouse")?;
    let Some(query) = args.query else {
        anyhow::ensure!(args.output.is_none(), "--output needs a query");
        let mut stdin = std::io::stdin().lock();
        return Ok(sql::shell::run(
            &ctx,
            &mut stdin,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
            format,
        )
        .await?);
    };
    let (schema, batches) = sql::query(&ctx, &query).await?;
    match args.output {
        Some(path) => {
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("while creating {}", path.display()))?,
            );
            sql::output::write(&schema, &batches, format, &mut file)?;
            file.flush()
                .with_context(|| format!("while writing {}", path.display()))?;
        }
        None => {
            anyhow::ensure!(
                format != Format::Parquet || !std::io::stdout().is_terminal(),
                "--format parquet is binary; give --output <file> or redirect stdout"
            );
            sql::output::write(&schema, &batches, format, &mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}

/// A token cancelled by ctrl-c or SIGTERM: the one shutdown path of every long-running command.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler cannot fail on unix");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        trigger.cancel();
    });
    token
}
