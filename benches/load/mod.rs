//! What the HTTP benchmarks share: `wrk` driving one path with a random viewer's token per
//! request, and reading its report.

use std::path::Path;
use std::process::Command;

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
    let script = dir.join(format!("load-{}.lua", path.len()));
    std::fs::write(
        &script,
        format!(
            r#"
local tokens = {{}}
for line in io.lines("{}") do tokens[#tokens + 1] = line end
math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16))
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", "{path}", {{["authorization"] = "Bearer " .. t}})
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
