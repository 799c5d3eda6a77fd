//! SQL over the warehouse: the rollups against golden outputs computed by hand from a small
//! hand-written event set (`tests/golden/`), the tables and their `dt` partitions as DataFusion
//! sees them, the refusal to write, the shell, and the data dictionary being current.
//!
//! Set `APERTURE_BLESS=1` to rewrite the golden outputs and `docs/data-dictionary.md` from the
//! current code; review the diff before committing it.

use std::path::{Path, PathBuf};

use aperture_schema::warehouse::Table;
use aperture_schema::{Envelope, Origin, decode};
use aperture_warehouse::compact::{Filter, Settings, compact};
use aperture_warehouse::sink::write_events;
use aperture_warehouse::sql::{self, Format, VIEWS, query};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use tempfile::TempDir;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("APERTURE_BLESS").is_some()
}

fn golden_events() -> Vec<Envelope> {
    std::fs::read_to_string(golden_dir().join("events.ndjson"))
        .unwrap()
        .lines()
        .map(|line| decode(line.as_bytes(), Origin::Topic).expect("golden events are valid"))
        .collect()
}

/// The golden events in a warehouse, in two commits (so partitions hold several files) with
/// tiny row groups (so statistics have something to prune).
fn golden_root() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("warehouse");
    let events = golden_events();
    let (first, second) = events.split_at(events.len() / 2);
    write_events(&root, "golden", first.to_vec(), 4).unwrap();
    write_events(&root, "golden", second.to_vec(), 4).unwrap();
    (dir, root)
}

async fn csv(root: &Path, sql: &str) -> String {
    let ctx = sql::context(root).await.unwrap();
    let (schema, batches) = query(&ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    sql::output::write(&schema, &batches, Format::Csv, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The order each rollup's golden output is kept in.
fn order_of(view: &str) -> &'static str {
    match view {
        "creator_daily" | "creator_interactions" => "dt, author_id",
        "creator_top_posts" => "dt, author_id, rank",
        "hashtag_daily" => "dt, hashtag",
        "follower_growth" => "user_id, dt",
        "post_likes" => "post_id",
        other => panic!("no golden order for {other}"),
    }
}

#[tokio::test]
async fn every_rollup_matches_its_golden_output() {
    let (_dir, root) = golden_root();
    for view in VIEWS {
        let got = csv(
            &root,
            &format!(
                "SELECT * FROM {} ORDER BY {}",
                view.name,
                order_of(view.name)
            ),
        )
        .await;
        let path = golden_dir().join(format!("{}.csv", view.name));
        if bless() {
            std::fs::write(&path, &got).unwrap();
        }
        let expected =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            got,
            expected,
            "{} differs from {}",
            view.name,
            path.display()
        );
    }
}

/// `views` holds both post views and profile visits, counted in one pass: a creator whose
/// profile was visited on a day none of their posts was viewed still has that day's row, and
/// the visits count nothing towards views or reach (and the creator's own view, nothing).
#[tokio::test]
async fn profile_visits_alone_make_a_row_with_no_views() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("warehouse");
    let events: Vec<Envelope> = [
        r#"{"v":1,"event_id":"p1","type":"profile_view","actor_id":4,"ts":1763856005600,"target_id":7}"#,
        r#"{"v":1,"event_id":"p2","type":"profile_view","actor_id":5,"ts":1763856005700,"target_id":7}"#,
        r#"{"v":1,"event_id":"p3","type":"view","actor_id":8,"ts":1763856005800,"post_id":801,"author_id":8,"surface":"profile","dwell_ms":400,"watch_ms":400}"#,
        r#"{"v":1,"event_id":"p4","type":"view","actor_id":4,"ts":1763856005900,"post_id":801,"author_id":8,"surface":"feed","dwell_ms":900,"watch_ms":3000}"#,
        r#"{"v":1,"event_id":"p5","type":"view","actor_id":4,"ts":1763942405900,"post_id":801,"author_id":8,"surface":"feed","dwell_ms":900,"watch_ms":1000}"#,
        r#"{"v":1,"event_id":"p6","type":"profile_view","actor_id":5,"ts":1763942406000,"target_id":8}"#,
    ]
    .iter()
    .map(|line| decode(line.as_bytes(), Origin::Topic).expect("a valid event"))
    .collect();
    write_events(&root, "golden", events, 4).unwrap();
    let got = csv(
        &root,
        "SELECT author_id, dt, views, reach, watch_ms, profile_visits, interactions \
         FROM creator_daily ORDER BY dt, author_id",
    )
    .await;
    assert_eq!(
        got,
        "author_id,dt,views,reach,watch_ms,profile_visits,interactions\n\
         7,2025-11-23,0,0,0,2,0\n\
         8,2025-11-23,1,1,3000,0,0\n\
         8,2025-11-24,1,1,1000,1,0\n"
    );
}

#[tokio::test]
async fn every_table_holds_its_events_with_dt_a_date_from_the_folder() {
    let (_dir, root) = golden_root();
    let events = golden_events();
    let ctx = sql::context(&root).await.unwrap();
    for table in Table::ALL {
        let expected = events
            .iter()
            .filter(|e| Table::of(e.kind()) == table)
            .count() as i64;
        let (_, batches) = query(&ctx, &format!("SELECT count(*) AS n FROM {table}"))
            .await
            .unwrap();
        let n = batches[0].column(0).as_primitive::<Int64Type>().value(0);
        assert_eq!(n, expected, "{table}");
        let (schema, _) = query(&ctx, &format!("SELECT * FROM {table} LIMIT 0"))
            .await
            .unwrap();
        assert_eq!(
            schema.field_with_name("dt").unwrap().data_type(),
            &DataType::Date32,
            "{table}.dt"
        );
        assert_eq!(
            schema.fields().len(),
            table.columns().len(),
            "{table} has the columns of its definition"
        );
    }
    let (_, batches) = query(
        &ctx,
        "SELECT count(*) FROM likes WHERE dt = DATE '2025-11-24' AND author_id = 1",
    )
    .await
    .unwrap();
    assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 1);
}

/// The plans `EXPLAIN <sql>` answers, one after the other.
async fn explain(ctx: &datafusion::prelude::SessionContext, sql: &str) -> String {
    let (_, batches) = query(ctx, &format!("EXPLAIN {sql}")).await.unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let column = b.column(1).as_string::<i32>();
            (0..column.len())
                .map(|i| column.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_filter_on_dt_reads_only_that_days_folder() {
    let (_dir, root) = golden_root();
    let ctx = sql::context(&root).await.unwrap();
    let plan = explain(
        &ctx,
        "SELECT post_id FROM likes WHERE dt = DATE '2025-11-24'",
    )
    .await;
    assert!(plan.contains("likes/dt=2025-11-24/"), "{plan}");
    assert!(!plan.contains("likes/dt=2025-11-23/"), "{plan}");
}

/// A rollup's part of a statement is planned without the physical optimiser (see
/// `sql::rollup`), which a join in it could not be: no rollup may join.
#[tokio::test]
async fn no_rollup_joins() {
    let (_dir, root) = golden_root();
    let ctx = sql::context(&root).await.unwrap();
    for view in VIEWS {
        let plan = explain(&ctx, &format!("SELECT * FROM {}", view.name)).await;
        assert!(plan.contains("DataSourceExec"), "{plan}");
        assert!(!plan.contains("Join"), "{} joins: {plan}", view.name);
    }
}

/// Through a rollup too: a filter on `dt` reaches every table the rollup reads.
#[tokio::test]
async fn a_filter_on_dt_of_a_rollup_reads_only_that_days_folders() {
    let (_dir, root) = golden_root();
    let ctx = sql::context(&root).await.unwrap();
    let plan = explain(
        &ctx,
        "SELECT * FROM creator_daily WHERE dt = DATE '2025-11-24'",
    )
    .await;
    let mut read = 0;
    for table in ["views", "likes", "comments", "shares", "saves", "follows"] {
        if root.join(table).join("dt=2025-11-24").exists() {
            assert!(
                plan.contains(&format!("{table}/dt=2025-11-24/")),
                "{table}: {plan}"
            );
            read += 1;
        }
    }
    assert!(
        read >= 4,
        "the golden events touch most tables that day: {plan}"
    );
    assert!(!plan.contains("dt=2025-11-23/"), "{plan}");
}

/// The column each rollup is looked up by, as its users filter it.
fn key_of(view: &str) -> &'static str {
    match view {
        "creator_daily" | "creator_interactions" | "creator_top_posts" => "author_id",
        "hashtag_daily" => "hashtag",
        "follower_growth" => "user_id",
        "post_likes" => "post_id",
        other => panic!("no key for {other}"),
    }
}

/// The rows of `sql`'s answer as CSV lines, sorted (the header first).
async fn sorted_rows(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<String> {
    let (schema, batches) = query(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    sql::output::write(&schema, &batches, Format::Csv, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1..].sort();
    lines
}

/// The first value of the first column of `sql`'s answer, written as a SQL literal.
async fn literal(ctx: &datafusion::prelude::SessionContext, sql: &str) -> String {
    let (_, batches) = query(ctx, sql).await.unwrap();
    let column = batches[0].column(0);
    let text = arrow::util::display::array_value_to_string(column, 0).unwrap();
    match column.data_type() {
        DataType::Int64 => text,
        DataType::Date32 => format!("DATE '{text}'"),
        _ => format!("'{text}'"),
    }
}

/// A rollup keeps its optimised plan for the session and each statement's filters and columns
/// are pushed into it (`sql::rollup`). Whatever a statement asks, the answer must be the one
/// DataFusion gives with the view's SQL inlined into the statement and optimised with it: on
/// a generated workload over several days, for filters on the key and on `dt` (which must not
/// cut `follower_growth`'s running totals), on aggregates, a volatile filter and a subquery
/// (which DataFusion keeps above the rollup), a filter on a column the statement does not
/// select, a projection, a limit with and without a filter, and a self-join.
#[tokio::test]
async fn a_rollup_answers_as_its_sql_inlined_into_the_statement_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("warehouse");
    let events = aperture_ingest::generate::generate(&aperture_ingest::generate::Spec {
        seed: 11,
        users: 300,
        days: 3.0,
        ..aperture_ingest::generate::Spec::default()
    })
    .events;
    write_events(&root, "rollups", events, 4096).unwrap();
    let ctx = sql::context(&root).await.unwrap();
    for view in VIEWS {
        let name = view.name;
        let inlined = format!("inlined_{name}");
        let create = view.sql.replacen(
            &format!("CREATE VIEW {name} "),
            &format!("CREATE VIEW {inlined} "),
            1,
        );
        assert_ne!(create, view.sql, "{name}'s SQL creates {name}");
        query(&ctx, &create).await.unwrap();
        let key = key_of(name);
        let k = literal(
            &ctx,
            &format!(
                "SELECT {key} FROM {inlined} GROUP BY {key} ORDER BY count(*) DESC, {key} LIMIT 1"
            ),
        )
        .await;
        let schema = ctx.table(name).await.unwrap().schema().as_arrow().clone();
        let last = schema.fields().last().unwrap().name();
        let mut statements = vec![
            "SELECT * FROM {v}".to_owned(),
            format!("SELECT * FROM {{v}} WHERE {key} = {k}"),
            format!("SELECT {last} FROM {{v}} WHERE {key} = {k}"),
            format!("SELECT count(*) AS n, 1 AS one FROM {{v}} WHERE {key} = {k}"),
            format!("SELECT {key}, count(*) AS n FROM {{v}} GROUP BY {key} HAVING count(*) > 0"),
            format!("SELECT * FROM {{v}} WHERE random() < 2.0 AND {key} = {k}"),
            format!(
                "SELECT * FROM {{v}} WHERE {key} IN \
                 (SELECT {key} FROM {{v}} WHERE {key} <> {k} ORDER BY {key} LIMIT 3)"
            ),
            format!(
                "SELECT a.* FROM {{v}} a JOIN {{v}} b ON a.{key} = b.{key} WHERE b.{key} = {k}"
            ),
        ];
        if view.sql.contains(" dt") {
            let day = literal(
                &ctx,
                &format!("SELECT dt FROM {inlined} GROUP BY dt ORDER BY dt LIMIT 1 OFFSET 1"),
            )
            .await;
            statements.push(format!("SELECT * FROM {{v}} WHERE dt = {day}"));
            statements.push(format!(
                "SELECT * FROM {{v}} WHERE dt >= {day} AND {key} <> {k}"
            ));
        }
        for statement in &statements {
            let got = sorted_rows(&ctx, &statement.replace("{v}", name)).await;
            let expected = sorted_rows(&ctx, &statement.replace("{v}", &inlined)).await;
            assert!(expected.len() > 1, "{name}: {statement} answers no rows");
            assert_eq!(got, expected, "{name}: {statement}");
        }
        // A limit reaches the rollup's scan, after its filters. The counts are checked against
        // the rows there are: DataFusion fails the first statement with the SQL of
        // `post_likes` inlined (its aggregation, left with no aggregates once the count needs
        // no column, becomes a DISTINCT the limit is then pushed into).
        let rows = |sql: String| {
            let ctx = &ctx;
            async move { sorted_rows(ctx, &sql).await.len() - 1 }
        };
        let all = rows(format!("SELECT * FROM {inlined}")).await;
        let of_k = rows(format!("SELECT * FROM {inlined} WHERE {key} = {k}")).await;
        for (statement, expected) in [
            (format!("SELECT * FROM {name} LIMIT 5"), all.min(5)),
            (
                format!("SELECT * FROM {name} WHERE {key} = {k} LIMIT 3"),
                of_k.min(3),
            ),
        ] {
            let counted =
                sorted_rows(&ctx, &format!("SELECT count(*) AS n FROM ({statement})")).await;
            assert_eq!(
                counted,
                ["n".to_owned(), expected.to_string()],
                "{statement}"
            );
        }
    }
}

#[tokio::test]
async fn statements_that_write_are_refused() {
    let (dir, root) = golden_root();
    let ctx = sql::context(&root).await.unwrap();
    let target = dir.path().join("copy.parquet");
    for statement in [
        "INSERT INTO likes SELECT * FROM likes".to_owned(),
        format!("COPY likes TO '{}'", target.display()),
    ] {
        let err = query(&ctx, &statement).await.unwrap_err().to_string();
        assert!(
            err.to_lowercase().contains("not supported") || err.contains("DML"),
            "{statement}: {err}"
        );
    }
    assert!(!target.exists());
}

/// The shell keeps one session open while the sink commits and compaction swaps files: each
/// statement must see the files in place when it starts, including a table's first files.
#[tokio::test]
async fn a_session_left_open_sees_later_commits_and_compacted_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("warehouse");
    let events = golden_events();
    let count = |table: Table, events: &[Envelope]| {
        events
            .iter()
            .filter(|e| Table::of(e.kind()) == table)
            .count() as i64
    };
    let (first, second) = events.split_at(events.len() / 2);
    // The first commit holds no shares, so that table's folder does not exist yet.
    let (shares, first): (Vec<_>, Vec<_>) = first
        .iter()
        .cloned()
        .partition(|e| Table::of(e.kind()) == Table::Shares);
    assert!(!shares.is_empty() && count(Table::Views, &first) > 0);
    write_events(&root, "golden", first.clone(), 4).unwrap();
    assert!(!root.join("shares").exists());

    let ctx = sql::context(&root).await.unwrap();
    let counted = |sql: String| {
        let ctx = &ctx;
        async move {
            let (_, batches) = query(ctx, &sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            batches[0].column(0).as_primitive::<Int64Type>().value(0)
        }
    };
    let counts = || async {
        let mut out = Vec::new();
        for table in [Table::Views, Table::Shares] {
            out.push(counted(format!("SELECT count(*) FROM {table}")).await);
        }
        out
    };
    assert_eq!(counts().await, [count(Table::Views, &first), 0]);

    let rest: Vec<Envelope> = shares.into_iter().chain(second.iter().cloned()).collect();
    write_events(&root, "golden", rest, 4).unwrap();
    let all = [count(Table::Views, &events), count(Table::Shares, &events)];
    assert_eq!(counts().await, all, "the second commit is seen");

    let report = compact(
        &Settings {
            root: root.clone(),
            target_size: 256 << 20,
            row_group_size: 1024,
            fan_in: 64,
        },
        &Filter::default(),
    )
    .unwrap();
    assert!(report.inputs > report.outputs, "{report:?}");
    assert_eq!(
        counts().await,
        all,
        "the compacted files replace the merged ones"
    );
}

#[tokio::test]
async fn the_shell_answers_each_statement_and_survives_a_bad_one() {
    let (_dir, root) = golden_root();
    let ctx = sql::context(&root).await.unwrap();
    let input = "SELECT count(*) AS n\n  FROM views;\nSELEC nonsense;\n\\d\n\\d shares\nSELECT 41 + 1 AS answer\n";
    let mut out = Vec::new();
    let mut err = Vec::new();
    sql::shell::run(&ctx, &mut input.as_bytes(), &mut out, &mut err, Format::Csv)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert!(out.starts_with("n\n9\n"), "{out}");
    assert!(out.contains("creator_daily,VIEW"), "{out}");
    assert!(out.contains("to_id,Int64,YES"), "{out}");
    assert!(out.ends_with("answer\n42\n"), "{out}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
}

#[tokio::test]
async fn every_rollup_column_is_documented_in_its_sql_file() {
    let ctx = sql::catalog::empty().await.unwrap();
    for view in VIEWS {
        let schema = ctx
            .table(view.name)
            .await
            .unwrap()
            .schema()
            .as_arrow()
            .clone();
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let documented: Vec<String> = view.column_docs().into_iter().map(|(n, _)| n).collect();
        assert_eq!(columns, documented, "{}: columns and their docs", view.name);
    }
}

#[tokio::test]
async fn the_data_dictionary_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/data-dictionary.md");
    let generated = sql::dictionary::markdown().await.unwrap();
    if bless() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/data-dictionary.md is stale; regenerate it with \
         `cargo run -p aperture -- warehouse dictionary > docs/data-dictionary.md`"
    );
    for table in Table::ALL {
        for column in table.columns() {
            assert!(
                generated.contains(&format!("| `{}` |", column.name)),
                "{table}.{}",
                column.name
            );
        }
    }
}
