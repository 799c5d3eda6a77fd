//! Crash points for the crash tests: `APERTURE_WAREHOUSE_FAILPOINT=<name>[@<n>]` makes the
//! process abort, as a power cut or SIGKILL would, the `n`th time (default the first) it
//! reaches the point called `name`. Unset, a point costs one cached comparison.
//!
//! Points: `sink-before-manifest` (a commit's files written and fsynced in `_sink/tmp/`, the
//! manifest not yet replaced), `sink-after-manifest` (the manifest replaced, the files not yet
//! renamed into place), `compact-after-manifest` (a swap committed, the folders not yet
//! exchanged), `compact-after-swap` (exchanged, the old folder not yet deleted), and on object
//! roots `swap-after-inputs-deleted` (a swap's inputs deleted, its outputs not yet copied in).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable that arms a crash point.
pub const FAILPOINT_ENV: &str = "APERTURE_WAREHOUSE_FAILPOINT";

struct Armed {
    name: String,
    at: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(FAILPOINT_ENV).ok()?;
            let (name, at) = match spec.split_once('@') {
                Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Armed {
                name,
                at,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process if the point `name` is armed and this is its fatal hit.
pub fn hit(name: &str) {
    let Some(armed) = armed() else {
        return;
    };
    if armed.name == name && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.at {
        tracing::error!(failpoint = name, "crash point reached; aborting");
        std::process::abort();
    }
}
