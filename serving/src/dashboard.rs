//! The creators' dashboard: server-rendered HTML where every number is in the page (tiles and
//! tables, readable without JavaScript and by a screen reader), charts drawn over the daily
//! table by the vendored uPlot, CSV exports of exactly what the tables show, and a sign-in
//! that trades a token for an HttpOnly session cookie.
//!
//! The creator is always the signed-in viewer: there is no author parameter. All state is in
//! the query string (`range`, `from`, `to`, `sort`), so a URL can be shared and the back button
//! works. Pages answer with a strict Content-Security-Policy (`script-src 'self'`, no inline
//! script or style) and `Cache-Control: private, no-store`.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{SESSION_COOKIE, same_origin, session_token};
use crate::error::ApiError;
use crate::insights::{self, AccountInsights, Figures, Range, SortBy};

/// The policy of every dashboard page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        (
            "dashboard.html",
            include_str!("../templates/dashboard.html"),
        ),
    ] {
        env.add_template(name, source)
            .expect("the dashboard's templates parse (a unit test renders each)");
    }
    env
});

/// A page of ours with the headers every one carries.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(h);
    response
}

fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A login link carries a token in its query string: never send it to another site as a
    // referrer. (`no-referrer` would also make the browser send `Origin: null` on the sign-in
    // form's POST, which the origin check must refuse.)
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn render(name: &str, ctx: minijinja::Value) -> Result<String, ApiError> {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("rendering {name}: {e:#}")))
}

/// Where to go after signing in: a path of this site only.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/dashboard".to_owned(),
    }
}

/// `GET /login`: the sign-in form; `token` pre-fills it (the link `make run` prints), but only
/// the form's POST signs in, so a link alone changes nothing.
pub async fn get_login(Query(params): Query<HashMap<String, String>>) -> Response {
    let html = render(
        "login.html",
        context! {
            token => params.get("token").cloned().unwrap_or_default(),
            next => local_path(params.get("next").map(String::as_str)),
            error => Option::<String>::None,
        },
    );
    match html {
        Ok(html) => page(StatusCode::OK, html),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: verifies the token and keeps it in the session cookie.
pub async fn post_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden_origin();
    }
    let token = form.token.trim().to_owned();
    let next = local_path(form.next.as_deref());
    match state.tokens.verify(&token) {
        Ok(_) => {
            let mut cookie = Cookie::new(SESSION_COOKIE, token);
            cookie.set_http_only(true);
            cookie.set_same_site(SameSite::Strict);
            cookie.set_path("/");
            let mut response = (jar.add(cookie), Redirect::to(&next)).into_response();
            secure(response.headers_mut());
            response
        }
        Err(e) => match render(
            "login.html",
            context! { token => "", next => next, error => e.to_string() },
        ) {
            Ok(html) => page(StatusCode::UNAUTHORIZED, html),
            Err(e) => e.into_response(),
        },
    }
}

/// `POST /logout`: forgets the session.
pub async fn post_logout(headers: HeaderMap, jar: CookieJar) -> Response {
    if !same_origin(&headers) {
        return forbidden_origin();
    }
    let mut response = (
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        Redirect::to("/login"),
    )
        .into_response();
    secure(response.headers_mut());
    response
}

fn forbidden_origin() -> Response {
    ApiError::Forbidden(
        "this request must come from a page of this site (its Origin header names another)".into(),
    )
    .into_response()
}

/// The signed-in creator, if the request carries a valid session.
fn creator(state: &AppState, headers: &HeaderMap) -> Option<u64> {
    session_token(headers).and_then(|token| state.tokens.verify(&token).ok())
}

/// Where a browser that is not signed in goes: the sign-in form, then back to `uri`.
fn sign_in_first(uri: &axum::http::Uri) -> Response {
    let next = uri.path_and_query().map_or("/dashboard", |p| p.as_str());
    let mut r = Redirect::to(&format!("/login?next={}", urlencode(next))).into_response();
    secure(r.headers_mut());
    r
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn read(
    state: &AppState,
    creator: u64,
    params: &HashMap<String, String>,
) -> Result<(AccountInsights, Range, chrono::NaiveDate), ApiError> {
    let now = crate::now_ms();
    let today = insights::today(now);
    let range = Range::parse(params, today)?;
    let sort = SortBy::parse(params)?;
    let data = insights::account(
        &state.store,
        creator,
        range,
        today,
        sort,
        state.settings.partitions,
        state.settings.insights_min_accounts,
    )
    .await?;
    Ok((data, range, today))
}

/// A number as the page shows it: digits grouped by thousands.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A duration in ms as the page shows it: `1 h 02 min`, `3 min 05 s`, `12.3 s`.
fn duration(ms: f64) -> String {
    let s = ms / 1000.0;
    if s >= 3600.0 {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as i64,
            ((s % 3600.0) / 60.0) as i64
        )
    } else if s >= 60.0 {
        format!("{} min {:02} s", (s / 60.0) as i64, (s % 60.0) as i64)
    } else {
        format!("{s:.1} s")
    }
}

#[derive(Debug, Serialize)]
struct Tile {
    key: &'static str,
    label: &'static str,
    value: String,
    raw: f64,
    estimated: bool,
    error: String,
    change: String,
    change_raw: String,
    direction: &'static str,
    previous: String,
}

/// The tiles, in the page's order: each the range's figure and its change.
fn tiles(totals: &Figures, current: &Figures, previous: &Figures) -> Vec<Tile> {
    type Pick = fn(&Figures) -> f64;
    let metrics: [(&str, &str, bool, bool, Pick); 14] = [
        ("views", "Views", false, false, |f| f.counts.views as f64),
        ("reach", "Accounts reached", true, false, |f| {
            f.reach.value as f64
        }),
        ("accounts_engaged", "Accounts engaged", true, false, |f| {
            f.accounts_engaged.value as f64
        }),
        ("interactions", "Interactions", false, false, |f| {
            f.counts.interactions as f64
        }),
        ("likes", "Likes", false, false, |f| f.counts.likes as f64),
        ("comments", "Comments", false, false, |f| {
            f.counts.comments as f64
        }),
        ("shares", "Shares", false, false, |f| f.counts.shares as f64),
        ("saves", "Saves", false, false, |f| f.counts.saves as f64),
        ("profile_visits", "Profile visits", false, false, |f| {
            f.counts.profile_visits as f64
        }),
        ("follows", "Follows", false, false, |f| {
            f.counts.follows as f64
        }),
        ("unfollows", "Unfollows", false, false, |f| {
            f.counts.unfollows as f64
        }),
        ("net_follows", "Net follows", false, false, |f| {
            f.counts.net_follows as f64
        }),
        ("watch_ms", "Watch time", false, true, |f| {
            f.counts.watch_ms as f64
        }),
        ("avg_watch_ms", "Average watch per view", false, true, |f| {
            f.counts.avg_watch_ms.unwrap_or(0.0)
        }),
    ];
    metrics
        .into_iter()
        .map(|(key, label, estimated, time, pick)| {
            let show = |v: f64| {
                if time {
                    duration(v)
                } else {
                    grouped(v.round() as i64)
                }
            };
            let (now, before) = (pick(current), pick(previous));
            let change = insights::change(now, before);
            Tile {
                key,
                label,
                value: show(pick(totals)),
                raw: pick(totals),
                estimated,
                error: grouped((pick(totals) * insights::HLL_STANDARD_ERROR).round() as i64),
                change: match change {
                    Some(c) => format!("{c:+.1}%"),
                    None if now == 0.0 => "no change".to_owned(),
                    None => "new".to_owned(),
                },
                change_raw: change.map(|c| format!("{c:.3}")).unwrap_or_default(),
                direction: match change {
                    Some(c) if c > 0.0 => "up",
                    Some(c) if c < 0.0 => "down",
                    _ => "flat",
                },
                previous: show(before),
            }
        })
        .collect()
}

/// The daily table: its columns (key, label) and its rows as shown.
fn daily_table(data: &AccountInsights) -> (Vec<(&'static str, &'static str)>, Vec<Vec<String>>) {
    let columns = vec![
        ("day", "Day"),
        ("views", "Views"),
        ("reach", "Accounts reached (est.)"),
        ("accounts_engaged", "Accounts engaged (est.)"),
        ("interactions", "Interactions"),
        ("likes", "Likes"),
        ("comments", "Comments"),
        ("shares", "Shares"),
        ("saves", "Saves"),
        ("profile_visits", "Profile visits"),
        ("follows", "Follows"),
        ("unfollows", "Unfollows"),
        ("watch_ms", "Watch time (s)"),
    ];
    let rows = data
        .daily
        .iter()
        .map(|d| {
            let f = &d.figures;
            vec![
                d.day.clone(),
                f.counts.views.to_string(),
                f.reach.value.to_string(),
                f.accounts_engaged.value.to_string(),
                f.counts.interactions.to_string(),
                f.counts.likes.to_string(),
                f.counts.comments.to_string(),
                f.counts.shares.to_string(),
                f.counts.saves.to_string(),
                f.counts.profile_visits.to_string(),
                f.counts.follows.to_string(),
                f.counts.unfollows.to_string(),
                format!("{:.1}", f.counts.watch_ms as f64 / 1000.0),
            ]
        })
        .collect();
    (columns, rows)
}

/// The top-posts table: its header and its rows as shown.
fn posts_table(data: &AccountInsights) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let columns = vec![
        "Post",
        "Published (UTC)",
        "Type",
        "Views",
        "Accounts reached (est.)",
        "Interactions",
        "Likes",
        "Comments",
        "Shares",
        "Saves",
        "Watch time (s)",
    ];
    let rows = data
        .top_posts
        .iter()
        .map(|p| {
            vec![
                p.post_id.to_string(),
                chrono::DateTime::from_timestamp_millis(p.created_at)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
                p.media_type.clone().unwrap_or_default(),
                p.views.to_string(),
                p.reach.to_string(),
                p.interactions.to_string(),
                p.likes.to_string(),
                p.comments.to_string(),
                p.shares.to_string(),
                p.saves.to_string(),
                format!("{:.1}", p.watch_ms as f64 / 1000.0),
            ]
        })
        .collect();
    (columns, rows)
}

/// `GET /dashboard`: the signed-in creator's insights.
pub async fn get_dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(creator) = creator(&state, &headers) else {
        return sign_in_first(&uri);
    };
    match dashboard(&state, creator, &params).await {
        Ok(html) => page(StatusCode::OK, html),
        Err(ApiError::BadRequest { field, message }) => {
            // A bad range in a hand-edited URL: say so on the page, with the default range.
            let mut fallback = params.clone();
            for k in ["range", "from", "to", "sort"] {
                fallback.remove(k);
            }
            match dashboard(&state, creator, &fallback).await {
                Ok(html) => page(
                    StatusCode::BAD_REQUEST,
                    html.replacen(
                        "<main>",
                        &format!(
                            "<main><p class=\"error\" role=\"alert\">{} ({field}); showing the last 7 days.</p>",
                            minijinja::HtmlEscape(&message)
                        ),
                        1,
                    ),
                ),
                Err(e) => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

async fn dashboard(
    state: &AppState,
    creator: u64,
    params: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let (data, range, today) = read(state, creator, params).await?;
    let username: Option<String> = {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET")
            .arg(state.store.keys().profile(creator))
            .arg("username");
        state.store.run(&pipe).await?.take()?
    };
    let sort = data.sort;
    let here = |range: &Range, sort: SortBy| format!("{}&sort={}", range.query(), sort.as_str());
    let presets: Vec<_> = [7, 28, 90]
        .into_iter()
        .map(|days| {
            let p = Range::parse(
                &HashMap::from([("range".to_owned(), format!("{days}d"))]),
                today,
            )
            .expect("presets parse");
            context! {
                days => days,
                href => format!("/dashboard?{}", here(&p, sort)),
                current => range.preset == Some(days),
            }
        })
        .collect();
    let sorts: Vec<_> = SortBy::ALL
        .into_iter()
        .map(|s| {
            context! {
                label => sort_label(s),
                href => format!("/dashboard?{}", here(&range, s)),
                current => s == sort,
            }
        })
        .collect();
    let (daily_columns, daily_rows) = daily_table(&data);
    let (post_columns, post_rows) = posts_table(&data);
    let daily: Vec<_> = data
        .daily
        .iter()
        .zip(daily_rows)
        .map(|(d, cells)| context! { partial => d.partial, cells => cells })
        .collect();
    render(
        "dashboard.html",
        context! {
            username => username.unwrap_or_else(|| creator.to_string()),
            presets => presets,
            sorts => sorts,
            sort => sort.as_str(),
            sort_label => sort_label(sort),
            from => data.from,
            to => data.to,
            today => today.to_string(),
            days => range.days(),
            partial => data.daily.iter().any(|d| d.partial),
            previous_from => data.comparison.previous_from,
            previous_to => data.comparison.previous_to,
            data_through => data.data_through_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "— (no events counted yet)".to_owned()),
            tiles => tiles(&data.totals, &data.comparison.current, &data.comparison.previous),
            daily_columns => daily_columns.iter().map(|(k, l)| context! { key => k, label => l }).collect::<Vec<_>>(),
            daily => daily,
            daily_csv => format!("/dashboard/daily.csv?{}", here(&range, sort)),
            post_columns => post_columns,
            posts => post_rows,
            top_count => data.top_posts.len(),
            surfaces => data.views_by_surface.iter().map(|p| context! {
                surface => surface_label(&p.surface),
                views => grouped(p.views),
                share => if data.totals.counts.views > 0 {
                    format!("{:.1}%", 100.0 * p.views as f64 / data.totals.counts.views as f64)
                } else {
                    String::new()
                },
                accounts => p.accounts.map(|a| grouped(a.value as i64)).unwrap_or_else(|| "—".to_owned()),
            }).collect::<Vec<_>>(),
            min_accounts => data.min_accounts,
            posts_csv => format!("/dashboard/posts.csv?{}", here(&range, sort)),
        },
    )
}

fn surface_label(surface: &str) -> &'static str {
    match surface {
        "feed" => "Home feed",
        "explore" => "Explore",
        "reels" => "Reels",
        "profile" => "Your profile",
        "hashtag" => "Hashtag pages",
        _ => "Other (surfaces too few accounts used)",
    }
}

fn sort_label(s: SortBy) -> &'static str {
    match s {
        SortBy::Views => "views",
        SortBy::Reach => "accounts reached",
        SortBy::Interactions => "interactions",
        SortBy::WatchTime => "watch time",
    }
}

/// RFC 4180 CSV of a header and rows.
fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    };
    line(header.iter().map(|h| field(h)).collect(), &mut out);
    for row in rows {
        line(row.iter().map(|c| field(c)).collect(), &mut out);
    }
    out
}

fn csv_response(name: String, body: String) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    secure(h);
    r
}

/// `GET /dashboard/daily.csv` and `/dashboard/posts.csv`: the table the same URL's page shows.
pub async fn get_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(creator) = creator(&state, &headers) else {
        return sign_in_first(&uri);
    };
    let (data, _, _) = match read(&state, creator, &params).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let name = |what: &str| format!("insights-{creator}-{what}-{}-{}.csv", data.from, data.to);
    if uri.path().ends_with("/posts.csv") {
        let (columns, rows) = posts_table(&data);
        csv_response(name("posts"), csv(&columns, &rows))
    } else {
        let (columns, rows) = daily_table(&data);
        let header: Vec<&str> = columns.iter().map(|(_, l)| *l).collect();
        csv_response(name("daily"), csv(&header, &rows))
    }
}

/// The dashboard's static files, compiled in (nothing is read from disk at run time).
pub async fn get_static(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match path.as_str() {
        "dashboard.css" => (
            include_bytes!("../static/dashboard.css"),
            "text/css; charset=utf-8",
        ),
        "dashboard.js" => (
            include_bytes!("../static/dashboard.js"),
            "text/javascript; charset=utf-8",
        ),
        "vendor/uplot-1.6.32/uPlot.iife.min.js" => (
            include_bytes!("../static/vendor/uplot-1.6.32/uPlot.iife.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "vendor/uplot-1.6.32/uPlot.min.css" => (
            include_bytes!("../static/vendor/uplot-1.6.32/uPlot.min.css"),
            "text/css; charset=utf-8",
        ),
        "vendor/uplot-1.6.32/LICENSE" => (
            include_bytes!("../static/vendor/uplot-1.6.32/LICENSE"),
            "text/plain; charset=utf-8",
        ),
        _ => return ApiError::NotFound(format!("no static file {path:?}")).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CACHE_CONTROL, "public, max-age=3600".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_as_people_write_them() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-1_000), "-1,000");
        assert_eq!(grouped(999), "999");
        assert_eq!(duration(12_345.0), "12.3 s");
        assert_eq!(duration(185_000.0), "3 min 05 s");
        assert_eq!(duration(3_725_000.0), "1 h 02 min");
    }

    #[test]
    fn sign_in_only_returns_to_a_path_of_this_site() {
        assert_eq!(
            local_path(Some("/dashboard?range=28d")),
            "/dashboard?range=28d"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil",
            "dashboard",
        ] {
            assert_eq!(local_path(Some(bad)), "/dashboard", "{bad}");
        }
        assert_eq!(local_path(None), "/dashboard");
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let headers = |pairs: &[(header::HeaderName, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let host = (header::HOST, "127.0.0.1:8081");
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:8081")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:8081.evil.example")
        ])));
        assert!(!same_origin(&headers(&[host])));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let out = csv(&["a", "b,c"], &[vec!["1".into(), "say \"hi\"".into()]]);
        assert_eq!(out, "a,\"b,c\"\r\n1,\"say \"\"hi\"\"\"\r\n");
    }

    #[test]
    fn the_templates_render() {
        let login = render(
            "login.html",
            context! { token => "<t>", next => "/dashboard", error => "bad" },
        )
        .unwrap();
        assert!(login.contains("&lt;t&gt;") && login.contains("role=\"alert\""));
        assert!(!login.contains("<script"), "no inline script");
    }
}
