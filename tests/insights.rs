//! Creators' insights end to end: a generated week and more goes through the real broker to a
//! worker running every job, and what `/v1/insights` and the dashboard answer for the busiest
//! creators equals the oracle — exact figures exactly, reach and accounts engaged within three
//! standard errors of the exact distinct counts — for 7-, 28- and 90-day ranges, with their
//! comparisons. Also: signing in, the pages' headers, the CSV, and the privacy of post insights.

#[path = "../stream-jobs/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aperture_ingest::generate::{Spec, generate};
use aperture_schema::engagement::Daily;
use aperture_schema::state::utc_day;
use aperture_serving::auth::Tokens;
use aperture_stream_jobs::oracle::Oracle;
use chrono::NaiveDate;
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The oracle's figures of `author` over `from..=to`: exact counts and exact distinct sets.
fn expected(
    daily: &BTreeMap<(u64, String), Daily>,
    author: u64,
    from: NaiveDate,
    to: NaiveDate,
) -> (Daily, BTreeSet<u64>, BTreeSet<u64>) {
    let mut sum = Daily::default();
    let (mut reach, mut engaged) = (BTreeSet::new(), BTreeSet::new());
    let mut d = from;
    while d <= to {
        if let Some(x) = daily.get(&(author, d.format("%Y-%m-%d").to_string())) {
            sum.views += x.views;
            sum.interactions += x.interactions;
            for (kind, n) in &x.by_kind {
                *sum.by_kind.entry(kind.clone()).or_default() += n;
            }
            sum.profile_visits += x.profile_visits;
            for (surface, n) in &x.views_by_surface {
                *sum.views_by_surface.entry(surface.clone()).or_default() += n;
            }
            for (surface, accounts) in &x.reach_by_surface {
                sum.reach_by_surface
                    .entry(surface.clone())
                    .or_default()
                    .extend(accounts);
            }
            sum.follows += x.follows;
            sum.unfollows += x.unfollows;
            sum.watch_ms += x.watch_ms;
            sum.watch_views += x.watch_views;
            reach.extend(&x.reach);
            engaged.extend(&x.engaged);
        }
        d += chrono::Duration::days(1);
    }
    (sum, reach, engaged)
}

fn check_figures(what: &str, got: &Value, want: &(Daily, BTreeSet<u64>, BTreeSet<u64>)) {
    let (sum, reach, engaged) = want;
    for (field, value) in [
        ("views", sum.views),
        ("interactions", sum.interactions),
        ("follows", sum.follows),
        ("unfollows", sum.unfollows),
        ("net_follows", sum.follows - sum.unfollows),
        ("watch_ms", sum.watch_ms),
        ("watch_views", sum.watch_views),
        ("profile_visits", sum.profile_visits),
    ] {
        assert_eq!(got[field].as_i64(), Some(value), "{what}: {field} in {got}");
    }
    for kind in ["likes", "comments", "shares", "saves"] {
        let value = sum.by_kind.get(kind).copied().unwrap_or(0);
        assert_eq!(got[kind].as_i64(), Some(value), "{what}: {kind} in {got}");
    }
    for (field, exact) in [("reach", reach.len()), ("accounts_engaged", engaged.len())] {
        let estimate = got[field]["value"].as_f64().unwrap();
        let se = got[field]["standard_error"].as_f64().unwrap();
        // Below a few hundred Redis counts exactly; three standard errors otherwise.
        let allowed = (3.0 * exact as f64 * 0.0081).max(1.0);
        assert!(
            (estimate - exact as f64).abs() <= allowed,
            "{what}: {field} estimated {estimate} (±{se}) where the exact count is {exact}"
        );
    }
}

/// Views by surface: each surface enough accounts used on its own, with its exact views; the
/// others folded into `other`; the parts adding up to all views. Returns how many surfaces
/// were shown and how many folded.
fn check_surfaces(
    what: &str,
    body: &Value,
    want: &(Daily, BTreeSet<u64>, BTreeSet<u64>),
    min_accounts: u64,
) -> (usize, usize) {
    let (sum, _, _) = want;
    let parts = body["views_by_surface"]
        .as_array()
        .expect("views by surface");
    let total: i64 = parts.iter().map(|p| p["views"].as_i64().unwrap()).sum();
    assert_eq!(total, sum.views, "{what}: the parts add up to the views");
    let (mut shown, mut folded, mut other) = (0, 0, 0);
    for surface in aperture_schema::event::Surface::ALL {
        let name = surface.as_str();
        let views = sum.views_by_surface.get(name).copied().unwrap_or(0);
        let accounts = sum.reach_by_surface.get(name).map_or(0, |a| a.len()) as u64;
        let part = parts.iter().find(|p| p["surface"] == name);
        if accounts >= min_accounts {
            let part = part.unwrap_or_else(|| panic!("{what}: {name} ({accounts} accounts) shown"));
            assert_eq!(
                part["views"].as_i64(),
                Some(views),
                "{what}: views from {name}"
            );
            let estimate = part["accounts"]["value"].as_f64().unwrap();
            let allowed = (3.0 * accounts as f64 * 0.0081).max(1.0);
            assert!(
                (estimate - accounts as f64).abs() <= allowed,
                "{what}: accounts from {name}: {estimate} vs {accounts}"
            );
            shown += 1;
        } else {
            assert!(
                part.is_none(),
                "{what}: {name}, used by {accounts} accounts, is folded into other"
            );
            other += views;
            folded += usize::from(views > 0);
        }
    }
    let in_other = parts
        .iter()
        .find(|p| p["surface"] == "other")
        .map_or(0, |p| p["views"].as_i64().unwrap());
    assert_eq!(
        in_other, other,
        "{what}: other holds the folded surfaces' views"
    );
    (shown, folded)
}

struct Browser {
    base: String,
    client: reqwest::Client,
}

impl Browser {
    fn origin(&self) -> &str {
        &self.base
    }
}

#[test]
fn insights_of_the_busiest_creators_equal_the_oracle_over_7_28_and_90_days() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut config = test_config("insights", 4);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("insights"));
    config.warehouse.root = dir.join("warehouse");
    let workload = generate(&Spec {
        seed: 5,
        users: 150,
        days: 9.0,
        likes_per_post: 8.0,
        follows_per_user: 12.0,
        celebrities: 1,
        ..Spec::default()
    });
    let events = workload.events;
    create_topics(&config);
    produce(&config, &events);
    let worker = RunningWorker::start(&config);
    wait_caught_up(
        &config,
        &aperture_stream_jobs::jobs::names(),
        Duration::from_secs(240),
    );
    worker.stop();
    aperture_warehouse::sink::drain(&config, tokio_util::sync::CancellationToken::new())
        .expect("the warehouse sink drains the topic");
    let mut oracle = Oracle::new(&config);
    oracle.apply_all(&events);
    let daily = &oracle.engagement.daily;

    // The busiest creators by views, and the last day of the workload.
    let mut views: BTreeMap<u64, i64> = BTreeMap::new();
    for ((author, _), d) in daily {
        *views.entry(*author).or_default() += d.views;
    }
    let mut busiest: Vec<(i64, u64)> = views.iter().map(|(a, v)| (*v, *a)).collect();
    busiest.sort_unstable_by(|a, b| b.cmp(a));
    let creators: Vec<u64> = busiest.iter().take(3).map(|(_, a)| *a).collect();
    let last = date(&utc_day(events.iter().map(|e| e.ts).max().unwrap()));
    let tokens = Tokens::new(&config.serving.jwt_secret);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let warehouse = aperture_warehouse::sql::context(&config.warehouse.root)
            .await
            .expect("the warehouse opens");
        let state = aperture_serving::AppState::new(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                aperture_serving::app(state, Duration::from_secs(20)),
            )
            .await
            .unwrap()
        });
        let browser = Browser {
            base: base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        let client = reqwest::Client::new();
        let get = |viewer: u64, path: String| {
            let token = tokens.mint(viewer, Duration::from_secs(600));
            let client = client.clone();
            let url = format!("{base}{path}");
            async move {
                let r = client.get(url).bearer_auth(token).send().await.unwrap();
                let status = r.status();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };

        let (mut surfaces_shown, mut surfaces_folded) = (0, 0);
        for &creator in &creators {
            for days in [7i64, 28, 90] {
                let from = last - chrono::Duration::days(days - 1);
                let what = format!("creator {creator}, {days} days to {last}");
                let (status, body) = get(
                    creator,
                    format!("/v1/insights?range=custom&from={from}&to={last}"),
                )
                .await;
                assert_eq!(status, 200, "{what}: {body}");
                assert_eq!(body["creator_id"].as_u64(), Some(creator));
                check_figures(
                    &what,
                    &body["totals"],
                    &expected(daily, creator, from, last),
                );
                check_sql(&warehouse, &what, &body["totals"], creator, from, last).await;
                let (shown, folded) = check_surfaces(
                    &what,
                    &body,
                    &expected(daily, creator, from, last),
                    config.serving.insights_min_accounts,
                );
                surfaces_shown += shown;
                surfaces_folded += folded;
                let previous_to = from - chrono::Duration::days(1);
                let previous_from = from - chrono::Duration::days(days);
                assert_eq!(
                    body["comparison"]["previous_from"].as_str(),
                    Some(previous_from.to_string().as_str())
                );
                check_figures(
                    &format!("{what}, previous range"),
                    &body["comparison"]["previous"],
                    &expected(daily, creator, previous_from, previous_to),
                );
                let series = body["daily"].as_array().unwrap();
                assert_eq!(series.len() as i64, days, "{what}: one entry per day");
                for entry in series {
                    let d = date(entry["day"].as_str().unwrap());
                    check_figures(
                        &format!("{what}, {d}"),
                        entry,
                        &expected(daily, creator, d, d),
                    );
                    assert_eq!(entry["partial"], false, "{what}: {d} is a past day");
                }
                // Top posts: the creator's own, published in the range, best first.
                let top = body["top_posts"].as_array().unwrap();
                let mut previous = i64::MAX;
                for p in top {
                    let post = p["post_id"].as_u64().unwrap();
                    let o = &oracle.posts[&post];
                    assert_eq!(o.author, creator, "{what}: post {post} is another's");
                    assert!(!o.deleted, "{what}: deleted post {post} shown");
                    let day = date(&utc_day(o.created_at));
                    assert!(day >= from && day <= last, "{what}: post {post} of {day}");
                    let s = &oracle.engagement.posts[&post];
                    assert_eq!(p["likes"].as_u64(), Some(s.likers.len() as u64));
                    let v = p["views"].as_i64().unwrap();
                    assert!(v <= previous, "{what}: top posts ordered by views");
                    previous = v;
                }
            }
            // A creator sees only themselves: there is no author parameter to change that.
            let (status, body) = get(creator, "/v1/insights?range=7d&author=1".into()).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["creator_id"].as_u64(), Some(creator));
        }
        assert!(
            surfaces_shown > 0 && surfaces_folded > 0,
            "the ranges showed {surfaces_shown} surfaces and folded {surfaces_folded}: \
             both cases must be reached"
        );

        // Bad ranges name their field.
        for (query, field) in [
            ("range=8d", "range"),
            ("range=custom&from=2025-01-05&to=2025-01-01", "from"),
            ("range=custom&from=2025-01-05", "to"),
            ("range=custom&from=2025-01-01&to=2099-01-01", "to"),
            ("sort=likes", "sort"),
        ] {
            let (status, body) = get(creators[0], format!("/v1/insights?{query}")).await;
            assert_eq!(status, 400, "{query}: {body}");
            assert_eq!(
                body["error"]["field"].as_str(),
                Some(field),
                "{query}: {body}"
            );
        }

        // Post insights: the author's only.
        let (post, p) = oracle
            .posts
            .iter()
            .find(|(_, p)| {
                !p.deleted && p.author == creators[0] && !oracle.users[&p.author].private
            })
            .expect("the busiest creator has a live post");
        let (status, body) = get(p.author, format!("/v1/insights/posts/{post}")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["insights"]["unique_viewers"].is_u64(), "{body}");
        let other = creators[1];
        let (status, body) = get(other, format!("/v1/insights/posts/{post}")).await;
        assert_eq!(status, 403, "another creator's post insights: {body}");

        check_dashboard(&browser, &tokens, creators[0], last, daily).await;
        in_chromium(&browser.base, &tokens, creators[0], creators[1], last).await;
    });
}

/// The dashboard in Debian's Chromium, driven by Playwright (tests/browser/dashboard.py):
/// sign-in, tiles and tables against the API, switching ranges and sorting, back, the CSV,
/// light and dark screenshots (under the test's output folder), sign-out.
async fn in_chromium(base: &str, tokens: &Tokens, creator: u64, other: u64, last: NaiveDate) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = std::env::var_os("APERTURE_STATE_DIR")
        .map_or_else(|| root.join(".aperture"), std::path::PathBuf::from);
    let python = state.join("browser/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `scripts/services up` installs Playwright and Chromium",
        python.display()
    );
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let span = |days: i64| format!("{}:{last}", last - chrono::Duration::days(days - 1));
    let output = tokio::process::Command::new(python)
        .arg(root.join("tests/browser/dashboard.py"))
        .args(["--base", base])
        .args(["--token", &tokens.mint(creator, Duration::from_secs(600))])
        .args([
            "--other-token",
            &tokens.mint(other, Duration::from_secs(600)),
        ])
        .args(["--first", &span(28), "--second", &span(3)])
        .arg("--out")
        .arg(&out)
        .output()
        .await
        .expect("the browser test starts");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "the browser test failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for shot in ["dashboard-light.png", "dashboard-dark.png"] {
        assert!(out.join(shot).exists(), "{shot} saved");
    }
}

/// The first row of `sql`'s answer, every column as a whole number.
async fn row(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<i64> {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    let (_, batches) = aperture_warehouse::sql::query(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batch = batches.iter().find(|b| b.num_rows() > 0).expect("one row");
    (0..batch.num_columns())
        .map(|c| batch.column(c).as_primitive::<Int64Type>().value(0))
        .collect()
}

/// The API's figures of `creator` over `from..=to` against SQL over the warehouse: the exact
/// ones equal the rollups' (`creator_daily`, `creator_interactions`); the estimates are within
/// three standard errors of SQL's exact distinct counts.
async fn check_sql(
    ctx: &datafusion::prelude::SessionContext,
    what: &str,
    got: &Value,
    creator: u64,
    from: NaiveDate,
    to: NaiveDate,
) {
    let days = format!("author_id = {creator} AND dt BETWEEN DATE '{from}' AND DATE '{to}'");
    let daily = row(
        ctx,
        &format!(
            "SELECT CAST(COALESCE(SUM(views), 0) AS BIGINT), \
             CAST(COALESCE(SUM(watch_ms), 0) AS BIGINT), \
             CAST(COALESCE(SUM(follows), 0) AS BIGINT), \
             CAST(COALESCE(SUM(unfollows), 0) AS BIGINT) \
             FROM creator_daily WHERE {days}"
        ),
    )
    .await;
    let interactions = row(
        ctx,
        &format!(
            "SELECT CAST(COALESCE(SUM(interactions), 0) AS BIGINT), \
             CAST(COALESCE(SUM(likes), 0) AS BIGINT), \
             CAST(COALESCE(SUM(comments), 0) AS BIGINT), \
             CAST(COALESCE(SUM(shares), 0) AS BIGINT), \
             CAST(COALESCE(SUM(saves), 0) AS BIGINT) FROM creator_interactions \
             WHERE {days}"
        ),
    )
    .await;
    let visits = row(
        ctx,
        &format!(
            "SELECT COUNT(DISTINCT event_id) FROM views WHERE event_type = 'profile_view' \
             AND actor_id <> author_id AND {days}"
        ),
    )
    .await;
    let reach = row(
        ctx,
        &format!(
            "SELECT COUNT(DISTINCT actor_id) FROM views WHERE event_type = 'view' \
             AND actor_id <> author_id AND {days}"
        ),
    )
    .await;
    let engaged = row(
        ctx,
        &format!(
            "SELECT COUNT(DISTINCT actor_id) FROM ( \
               SELECT actor_id, author_id, dt FROM likes WHERE event_type = 'like' \
               UNION ALL SELECT actor_id, author_id, dt FROM comments \
                 WHERE event_type = 'comment_created' \
               UNION ALL SELECT actor_id, author_id, dt FROM shares \
               UNION ALL SELECT actor_id, author_id, dt FROM saves WHERE event_type = 'save' \
             ) engaged WHERE actor_id <> author_id AND {days}"
        ),
    )
    .await;
    for (field, sql) in [
        ("views", daily[0]),
        ("watch_ms", daily[1]),
        ("follows", daily[2]),
        ("unfollows", daily[3]),
        ("interactions", interactions[0]),
        ("likes", interactions[1]),
        ("comments", interactions[2]),
        ("shares", interactions[3]),
        ("saves", interactions[4]),
        ("profile_visits", visits[0]),
    ] {
        assert_eq!(
            got[field].as_i64(),
            Some(sql),
            "{what}: {field}, API vs SQL"
        );
    }
    for (field, exact) in [("reach", reach[0]), ("accounts_engaged", engaged[0])] {
        let estimate = got[field]["value"].as_f64().unwrap();
        let allowed = (3.0 * exact as f64 * 0.0081).max(1.0);
        assert!(
            (estimate - exact as f64).abs() <= allowed,
            "{what}: {field} estimated {estimate} where SQL counts {exact}"
        );
    }
}

/// Signing in, the page's headers and numbers, and the CSV of the same URL.
async fn check_dashboard(
    browser: &Browser,
    tokens: &Tokens,
    creator: u64,
    last: NaiveDate,
    daily: &BTreeMap<(u64, String), Daily>,
) {
    let base = &browser.base;
    let c = &browser.client;
    let from = last - chrono::Duration::days(27);
    let path = format!("/dashboard?range=custom&from={from}&to={last}&sort=views");

    // Without a session the page sends the browser to sign in, and back here after.
    let r = c.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/login?next=%2Fdashboard")
            || location.starts_with("/login?next=/dashboard"),
        "{location}"
    );

    let token = tokens.mint(creator, Duration::from_secs(600));
    let form = [("token", token.as_str()), ("next", path.as_str())];
    // From another site: refused.
    let r = c
        .post(format!("{base}/login"))
        .header("origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A bad token: the form again, with the reason.
    let r = c
        .post(format!("{base}/login"))
        .header("origin", browser.origin())
        .form(&[("token", "not-a-token"), ("next", "/dashboard")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());
    let r = c
        .post(format!("{base}/login"))
        .header("origin", browser.origin())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"].to_str().unwrap(), path);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();

    let r = c
        .get(format!("{base}{path}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h["cache-control"], "private, no-store");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let (sum, _, _) = expected(daily, creator, from, last);
    let views = format!("data-value=\"{}", sum.views);
    assert!(html.contains(&views), "the views tile shows {}", sum.views);
    assert!(
        html.contains("Data through"),
        "the page says how fresh it is"
    );

    // The bearer API accepts the session cookie too, and says the same.
    let r = c
        .get(format!(
            "{base}/v1/insights?range=custom&from={from}&to={last}"
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["totals"]["views"].as_i64(), Some(sum.views));

    // The CSV is the daily table's rows.
    let r = c
        .get(format!(
            "{base}/dashboard/daily.csv?range=custom&from={from}&to={last}"
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 28, "a header and one line per day");
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        let d = date(cells[0]);
        let (s, _, _) = expected(daily, creator, d, d);
        assert_eq!(cells[1].parse::<i64>().unwrap(), s.views, "{line}");
        let row = format!("<th scope=\"row\">{}</th><td>{}</td>", cells[0], cells[1]);
        assert!(html.contains(&row), "the page's table has {row}");
    }

    // A state-changing request on the cookie must come from a page of this site.
    let r = c
        .post(format!("{base}/v1/notifications/read"))
        .header("origin", "http://evil.example")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(format!("{base}/v1/notifications/read"))
        .header("origin", browser.origin())
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // Signing out forgets the session.
    let r = c
        .post(format!("{base}/logout"))
        .header("origin", browser.origin())
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}
