//! What the HTTP benchmarks share: `wrk` driving one path with a random viewer's token per
//! request, and reading its report.

// Each benchmark includes this module and uses the parts it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aperture_schema::{Config, Envelope, EventKind};
use aperture_serving::AppState;
use aperture_serving::auth::Tokens;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A figure from wrk's report: the value after `label` on its line, latencies in ms.
pub fn wrk_figure(report: &str, label: &str) -> f64 {
    let line = report
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("wrk printed no {label} line:\n{report}"));
    let value = line[label.len()..].trim();
    let (number, unit) = value.split_at(
        value
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(value.len()),
    );
    let number: f64 = number.parse().expect("a number");
    match unit {
        "us" => number / 1e3,
        "ms" | "" => number,
        "s" => number * 1e3,
        other => panic!("unknown unit {other} in {line}"),
    }
}

/// What wrk measured: requests/s, p50 ms, p99 ms.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
}

/// Drives `GET {base}{path}` (path with its query) for `seconds` over `clients` connections,
/// each request bearing a token picked at random from `tokens` (one per line) in `dir`.
/// Panics when any answer is not a 2xx: a fast error is not a result.
pub fn wrk(
    dir: &Path,
    tokens: &Path,
    base: &str,
    path: &str,
    clients: usize,
    seconds: u64,
) -> Load {
    wrk_as(
        dir,
        tokens,
        base,
        path,
        clients,
        seconds,
        Credential::Bearer,
    )
}

/// How a request carries its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`, as apps send it.
    Bearer,
    /// The dashboard's session cookie, as a signed-in browser sends it.
    Cookie,
}

/// [`wrk`], with the token carried as `credential`.
pub fn wrk_as(
    dir: &Path,
    tokens: &Path,
    base: &str,
    path: &str,
    clients: usize,
    seconds: u64,
    credential: Credential,
) -> Load {
    let (header, prefix) = match credential {
        Credential::Bearer => ("authorization", "Bearer "),
        Credential::Cookie => ("cookie", "aperture_session="),
    };
    let script = dir.join(format!("load-{}-{header}.lua", path.len()));
    std::fs::write(
        &script,
        format!(
            r#"
local tokens = {{}}
for line in io.lines("{}") do tokens[#tokens + 1] = line end
math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16))
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", "{path}", {{["{header}"] = "{prefix}" .. t}})
end
"#,
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &clients.to_string()])
        .args(["-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("{base}{path}"))
        .output()
        .expect("wrk runs (package wrk, installed by scripts/services)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        !report.contains("Non-2xx"),
        "{path} answered errors under load:\n{report}"
    );
    Load {
        rate: wrk_figure(&report, "Requests/sec:"),
        p50: wrk_figure(&report, "50%"),
        p99: wrk_figure(&report, "99%"),
    }
}

/// The viewers a benchmark drives: every account that follows someone (each has a feed to ask
/// for), with an hour-long bearer token each.
pub struct Viewers {
    pub ids: Vec<u64>,
    pub tokens: Vec<String>,
    /// The tokens one per line (`<dir>/tokens.txt`), the file [`wrk`]'s script reads.
    pub file: PathBuf,
}

/// See [`Viewers`]; the token file goes into `dir`.
pub fn follower_tokens(events: &[Envelope], config: &Config, dir: &Path) -> Viewers {
    let mut viewers: Vec<u64> = events
        .iter()
        .filter(|e| e.kind() == EventKind::Follow)
        .map(|e| e.actor_id)
        .collect();
    viewers.sort_unstable();
    viewers.dedup();
    let minter = Tokens::new(&config.serving.jwt_secret);
    let tokens: Vec<String> = viewers
        .iter()
        .map(|&v| minter.mint(v, Duration::from_secs(3600)))
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("tokens.txt");
    std::fs::write(&file, tokens.join("\n")).unwrap();
    Viewers {
        ids: viewers,
        tokens,
        file,
    }
}

/// The read API over `state` on a loopback port: its base URL and the server's task.
pub async fn serve(state: AppState) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            aperture_serving::app(state, Duration::from_secs(10)),
        )
        .await
        .unwrap()
    });
    (url, server)
}

/// Mean items per page of `GET {url}{path}` over `tokens` (not timed): a fast empty page is
/// no result.
pub async fn mean_items<'a>(
    url: &str,
    path: &str,
    tokens: impl Iterator<Item = &'a String>,
) -> f64 {
    let client = reqwest::Client::new();
    let (mut items, mut pages) = (0usize, 0usize);
    for t in tokens {
        let page: serde_json::Value = client
            .get(format!("{url}{path}"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        items += page["items"].as_array().map_or(0, Vec::len);
        pages += 1;
    }
    items as f64 / pages.max(1) as f64
}
