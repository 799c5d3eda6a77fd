//! The cluster rule (DESIGN.md §3), read off the scripts themselves: every key a script touches
//! is declared. A slot-local job's Lua reaches keys only through the `k_` functions, which
//! refuse at run time a name its update did not declare (the oracle suites run them); other
//! scripts only through `KEYS`. This test reads every script the workers and the read API run
//! and fails on a `redis.call` whose key is anything else.

use aperture_schema::Config;
use aperture_stream_jobs::jobs;

/// The jobs still applied as one script per partition batch, whose Lua builds keys of many
/// slots: they run on a single Redis node only, until they are written as steps.
const NOT_YET_SLOT_LOCAL: [&str; 6] = [
    "graph",
    "fanout",
    "notifications",
    "stories",
    "trending",
    "pools",
];

/// Commands whose second word is not a key.
const KEYLESS: [&str; 3] = ["TIME", "ECHO", "PING"];

/// Commands whose keys follow a count of them.
const NUMKEYS: [&str; 5] = ["ZINTERCARD", "SINTERCARD", "ZINTER", "ZUNION", "ZDIFF"];

/// The arguments of every `redis.call(…)` / `redis.pcall(…)` in `lua`, split at top-level
/// commas.
fn calls(lua: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["redis.call(", "redis.pcall("] {
        let mut rest = lua;
        while let Some(at) = rest.find(start) {
            let body = &rest[at + start.len()..];
            let (mut depth, mut args, mut current, mut quote) =
                (0i32, Vec::new(), String::new(), None);
            for c in body.chars() {
                match (quote, c) {
                    (Some(q), c) if c == q => {
                        quote = None;
                        current.push(c);
                    }
                    (Some(_), c) => current.push(c),
                    (None, '\'' | '"') => {
                        quote = Some(c);
                        current.push(c);
                    }
                    (None, '(' | '{' | '[') => {
                        depth += 1;
                        current.push(c);
                    }
                    (None, ')') if depth == 0 => break,
                    (None, ')' | '}' | ']') => {
                        depth -= 1;
                        current.push(c);
                    }
                    (None, ',') if depth == 0 => args.push(std::mem::take(&mut current)),
                    (None, c) => current.push(c),
                }
            }
            args.push(current);
            out.push(args.into_iter().map(|a| a.trim().to_owned()).collect());
            rest = &body[1..];
        }
    }
    out
}

/// Local names bound to a key: `local name = KEYS[…]` or `= k_…(…)` (first of a multiple
/// assignment too), or assigned later the same way.
fn key_locals(lua: &str, allowed: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut names = Vec::new();
    for line in lua.lines() {
        // `for _, name in ipairs({ KEYS[1], KEYS[2] }) do`
        if let Some(rest) = line.trim().strip_prefix("for _, ")
            && let Some((name, list)) = rest.split_once(" in ipairs({")
            && let Some((items, _)) = list.split_once('}')
            && items.split(',').all(|i| allowed(i.trim()))
        {
            names.push(name.trim().to_owned());
            continue;
        }
        let line = line.trim().trim_start_matches("local ");
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        if lhs.ends_with(['~', '<', '>', '=']) || rhs.starts_with('=') {
            continue;
        }
        let first = lhs.split(',').next().unwrap_or("").trim();
        if !first.is_empty()
            && first.chars().all(|c| c.is_alphanumeric() || c == '_')
            && allowed(rhs.trim())
        {
            names.push(first.to_owned());
        }
    }
    names
}

/// Each `redis.call` of `lua` whose key is not declared the way `allowed` accepts.
fn undeclared(lua: &str, allowed: &dyn Fn(&str) -> bool) -> Vec<String> {
    let locals = key_locals(lua, allowed);
    calls(lua)
        .into_iter()
        .filter(|args| {
            let command = args[0].trim_matches(['\'', '"']).to_ascii_uppercase();
            !KEYLESS.contains(&command.as_str())
        })
        .filter(|args| {
            let command = args[0].trim_matches(['\'', '"']).to_ascii_uppercase();
            // Commands that take a count of keys first.
            let keys: Vec<&String> = if NUMKEYS.contains(&command.as_str()) {
                let n: usize = args
                    .get(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(usize::MAX);
                args.iter().skip(2).take(n).collect()
            } else {
                args.get(1).into_iter().collect()
            };
            keys.is_empty()
                || keys
                    .iter()
                    .any(|key| !(allowed(key) || locals.iter().any(|l| l == *key)))
        })
        .map(|args| format!("redis.call({})", args.join(", ")))
        .collect()
}

fn through_keys(expr: &str) -> bool {
    expr.starts_with("KEYS[")
}

fn through_guard(expr: &str) -> bool {
    expr.starts_with("KEYS[") || expr.starts_with("k_")
}

#[test]
fn every_script_declares_the_keys_it_touches() {
    let config = Config::load(None).unwrap();
    let mut stepped = Vec::new();
    for job in jobs::all() {
        let lua = job.lua();
        if job.steps().is_some() {
            // Only the guarded key functions: no key built from the prefix by hand.
            assert!(
                !lua.contains("PREFIX"),
                "{}: builds a key name by hand",
                job.name()
            );
            let bad = undeclared(&lua, &through_guard);
            assert!(bad.is_empty(), "{}: undeclared keys: {bad:#?}", job.name());
            stepped.push(job.name());
        } else {
            assert!(
                NOT_YET_SLOT_LOCAL.contains(&job.name()),
                "{} is a partition-batch job and not listed as one",
                job.name()
            );
        }
    }
    assert!(stepped.contains(&"engagement"), "{stepped:?}");
    // The runtime's own scripts, the leases', and the read API's: KEYS only.
    let runtime = aperture_stream_jobs::runtime::script::compose_slot(
        &config.keyspace(),
        "",
        "local function apply_op(o, emit) end",
    );
    let runtime_own: String = runtime
        .lines()
        .filter(|l| !l.starts_with("local function k_"))
        .collect::<Vec<_>>()
        .join("\n");
    for (name, lua) in [
        ("slot-local update", runtime_own.as_str()),
        (
            "serving notifications",
            include_str!("../../serving/src/lua/notifications.lua"),
        ),
        (
            "serving ranked sessions",
            include_str!("../../serving/src/ranked/append.lua"),
        ),
    ] {
        let bad = undeclared(lua, &through_keys);
        assert!(bad.is_empty(), "{name}: undeclared keys: {bad:#?}");
    }
}

#[test]
fn the_scan_finds_an_undeclared_key() {
    let guarded = "local counts = k_post_counts(o.post)\n\
                   redis.call('HINCRBY', counts, 'views', 1)\n\
                   redis.call('PFADD', k_post_viewers(o.post), o.actor)";
    assert!(undeclared(guarded, &through_guard).is_empty());
    let by_hand = "redis.call('GET', PREFIX .. ':{u:' .. o.actor .. '}:profile')";
    assert_eq!(undeclared(by_hand, &through_guard).len(), 1);
    let elsewhere = "local t = redis.call('TIME')\nredis.call('SET', 'ap:other', 1)";
    assert_eq!(undeclared(elsewhere, &through_keys).len(), 1);
    let nested = "redis.call('HSET', KEYS[1], field, string.format('%d:%d', a, b))";
    assert!(undeclared(nested, &through_keys).is_empty());
    let counted = "local b = KEYS[5]\nredis.call('ZINTERCARD', 2, b, KEYS[3])";
    assert!(undeclared(counted, &through_keys).is_empty());
    let counted_bad = "redis.call('ZINTERCARD', 2, KEYS[1], 'ap:{u:1}:followers')";
    assert_eq!(undeclared(counted_bad, &through_keys).len(), 1);
}
