//! The rollup queries on DataFusion next to DuckDB, on the same Parquet files in the same run.
//!
//! A generated workload is written into a warehouse (in several commits, as the sink would,
//! then compacted), and each query runs on both engines, best of a few runs (5;
//! `APERTURE_BENCH_RUNS` sets how many, the same for both), printed with the ratio. DuckDB
//! runs through Python's `duckdb` package (`make bench-warehouse` installs it in
//! `.aperture/bench-venv`; `APERTURE_DUCKDB_PYTHON` names another interpreter). It reads the
//! same files with the same view definitions (`warehouse/sql/*.sql`, which are plain SQL); its
//! version, the one `notebooks/requirements.txt` pins, is printed with the figures.
//! DataFusion's planning alone (SQL to a physical plan, files listed) is timed apart and
//! printed beside its whole time, to tell a fixed cost per query from the cost of reading.
//! A session optimises a rollup's plan when a statement first reads it (`sql::rollup`), so
//! each query is also run once in a new session, and that first run printed apart ("df
//! first", which also meets colder caches): it is the statement's part of a one-off
//! `aperture sql "<query>"` (opening the catalog is not timed), the best-of figures what a
//! session (the shell, a notebook) pays for each later statement.
//! No figure is asserted: these machines are shared and noisy.
//!
//! The workload is run at two spans by default, one day and one week of 5,000 users: on one day
//! each table is a single `dt` folder and a query's time is mostly planning and opening files;
//! on a week, partitions and the reading of rows weigh more. `APERTURE_BENCH_USERS` (default
//! 5,000) and `APERTURE_BENCH_DAYS` (comma-separated spans in days, default `1,7`) change them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::warehouse::Table;
use aperture_warehouse::compact::{Filter, Settings, compact};
use aperture_warehouse::sink::write_events;
use aperture_warehouse::sql::{self, VIEWS, query};

/// The allocator of the `aperture` binary, which `aperture sql` runs in: DataFusion's planner
/// allocates many small nodes, and the system allocator adds a third to a small query's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COMMITS: usize = 8;

/// The queries compared: the creators' daily rollup over every creator, one creator's whole
/// history of it, and the top posts of the busiest creators.
const QUERIES: [(&str, &str); 3] = [
    (
        "creator_daily, all creators",
        "SELECT dt, count(*) AS creators, sum(views) AS views, sum(reach) AS reach, \
         sum(interactions) AS interactions, sum(follows) AS follows FROM creator_daily \
         GROUP BY dt ORDER BY dt",
    ),
    (
        "creator_daily, one creator",
        "SELECT * FROM creator_daily WHERE author_id = 1 ORDER BY dt",
    ),
    (
        "creator_top_posts, top 100 creators",
        "SELECT t.author_id, t.dt, t.rank, t.post_id, t.interactions FROM creator_top_posts t \
         JOIN (SELECT author_id FROM creator_daily ORDER BY interactions DESC, author_id LIMIT 100) c \
         ON c.author_id = t.author_id ORDER BY t.author_id, t.dt, t.rank",
    ),
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {value:?} is not a whole number")),
        Err(_) => default,
    }
}

fn main() {
    let users: u32 = env_or("APERTURE_BENCH_USERS", 5_000);
    let runs: usize = env_or("APERTURE_BENCH_RUNS", 5);
    assert!(runs > 0, "APERTURE_BENCH_RUNS: a query runs at least once");
    let spans = std::env::var("APERTURE_BENCH_DAYS").unwrap_or_else(|_| "1,7".to_owned());
    for (i, span) in spans.split(',').enumerate() {
        let days: f64 = match span.trim().parse() {
            Ok(days) if days > 0.0 => days,
            _ => panic!("APERTURE_BENCH_DAYS: {span:?} is not a positive number of days"),
        };
        if i > 0 {
            println!();
        }
        bench(users, days, runs);
    }
}

/// Writes a warehouse of `users` over `days` and prints every query's figures on it.
fn bench(users: u32, days: f64, runs: usize) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path().join("warehouse");

    let started = Instant::now();
    let events = generate(&Spec {
        users,
        days,
        ..Spec::default()
    })
    .events;
    let n = events.len();
    let chunk = n.div_ceil(COMMITS);
    for part in events.chunks(chunk) {
        write_events(&root, "bench", part.to_vec(), 262_144).expect("the warehouse is written");
    }
    let written = started.elapsed();
    drop(events);
    let settings = Settings {
        root: root.clone(),
        target_size: 256 << 20,
        row_group_size: 262_144,
        fan_in: 256,
    };
    let compacted = Instant::now();
    compact(&settings, &Filter::default()).expect("compaction runs");
    let compacted = compacted.elapsed();
    println!(
        "warehouse: {n} events from {users} users over {days} days, written in {COMMITS} commits \
         in {written:.2?}, compacted in {compacted:.2?}, {} on disk",
        human_bytes(dir_size(&root))
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let datafusion: Vec<DataFusionTiming> = runtime.block_on(async {
        let ctx = sql::context(&root).await.expect("the catalog opens");
        let mut out = Vec::new();
        for (_, q) in QUERIES {
            let fresh = sql::context(&root).await.expect("the catalog opens");
            let t = Instant::now();
            query(&fresh, q).await.expect("the query runs");
            let first = t.elapsed();
            let mut best = Duration::MAX;
            let mut rows = 0;
            for _ in 0..runs {
                let t = Instant::now();
                let (_, batches) = query(&ctx, q).await.expect("the query runs");
                best = best.min(t.elapsed());
                rows = batches.iter().map(|b| b.num_rows()).sum();
            }
            let mut planning = Duration::MAX;
            for _ in 0..runs {
                let t = Instant::now();
                sql::plan(&ctx, q).await.expect("the query plans");
                planning = planning.min(t.elapsed());
            }
            out.push(DataFusionTiming {
                first,
                best,
                planning,
                rows,
            });
        }
        out
    });

    let duckdb = duckdb_timings(&root, runs);
    if let Ok(ceiling) = &duckdb {
        println!("ceiling: duckdb {}", ceiling.version);
    }
    println!(
        "\n{:<38} {:>10} {:>14} {:>14} {:>14} {:>10} {:>8}",
        format!("query (best of {runs})"),
        "df first",
        "datafusion",
        "df planning",
        "duckdb",
        "df/duckdb",
        "rows"
    );
    for (i, (name, _)) in QUERIES.iter().enumerate() {
        let DataFusionTiming {
            first,
            best: df,
            planning,
            rows,
        } = datafusion[i];
        let ms = |d: Duration| format!("{:.1}ms", d.as_secs_f64() * 1e3);
        match duckdb.as_ref().ok().map(|d| d.timings[i]) {
            Some((dd, dd_rows)) => {
                println!(
                    "{:<38} {:>10} {:>14} {:>14} {:>12.1}ms {:>9.2}x {:>8}",
                    name,
                    ms(first),
                    ms(df),
                    ms(planning),
                    dd * 1e3,
                    df.as_secs_f64() / dd,
                    rows
                );
                if dd_rows != rows {
                    println!("  note: duckdb returned {dd_rows} rows, datafusion {rows}");
                }
            }
            None => println!(
                "{:<38} {:>10} {:>14} {:>14} {:>14} {:>10} {:>8}",
                name,
                ms(first),
                ms(df),
                ms(planning),
                "-",
                "-",
                rows
            ),
        }
    }
    if let Err(reason) = &duckdb {
        println!("\nduckdb not run: {reason}");
    }
}

/// What DataFusion measured for one query: its first run in a new session; the whole query and
/// its planning alone (SQL to the physical plan, files listed), each the best of the runs
/// (`APERTURE_BENCH_RUNS`); and the rows returned.
#[derive(Clone, Copy)]
struct DataFusionTiming {
    first: Duration,
    best: Duration,
    planning: Duration,
    rows: usize,
}

/// What DuckDB measured: its version, and per query seconds (best of the runs,
/// `APERTURE_BENCH_RUNS`) and rows.
#[derive(serde::Deserialize)]
struct Ceiling {
    version: String,
    timings: Vec<(f64, usize)>,
}

/// Runs every query on DuckDB over the same files.
fn duckdb_timings(root: &Path, runs: usize) -> Result<Ceiling, String> {
    let python = std::env::var("APERTURE_DUCKDB_PYTHON").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.aperture/bench-venv/bin/python"),
        PathBuf::from,
    );
    if !python.exists() {
        return Err(format!(
            "{} not found; `make bench-warehouse` installs duckdb there",
            python.display()
        ));
    }
    let mut setup: Vec<String> = Vec::new();
    for table in Table::ALL {
        // `dt` is inside every file, so the folders' hive partitioning is not needed.
        let glob = root.join(table.name()).join("*").join("*.parquet");
        setup.push(format!(
            "CREATE VIEW {} AS SELECT * FROM read_parquet('{}')",
            table.name(),
            glob.display()
        ));
    }
    for view in VIEWS {
        setup.push(view.sql.to_owned());
    }
    let queries: Vec<&str> = QUERIES.iter().map(|(_, q)| *q).collect();
    let script = format!(
        r#"
import json, sys, time, duckdb
work = json.load(sys.stdin)
con = duckdb.connect()
for s in work["setup"]:
    con.execute(s)
out = []
for q in work["queries"]:
    best, rows = float("inf"), 0
    for _ in range({runs}):
        t = time.perf_counter()
        rows = len(con.execute(q).fetchall())
        best = min(best, time.perf_counter() - t)
    out.append([best, rows])
print(json.dumps({{"version": duckdb.__version__, "timings": out}}))
"#
    );
    let work = serde_json::json!({ "setup": setup, "queries": queries });
    let mut child = Command::new(&python)
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {}: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(work.to_string().as_bytes())
            .map_err(|e| format!("could not talk to duckdb: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("could not run {}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let parsed: Ceiling = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("unexpected output from duckdb: {e}"))?;
    Ok(parsed)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

fn human_bytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}
