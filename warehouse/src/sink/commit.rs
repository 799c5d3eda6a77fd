//! One sink commit: the files, then the manifest (the commit point), then the renames.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aperture_schema::Envelope;
use aperture_schema::warehouse::Table;

use super::buffer::Taken;
use crate::error::WarehouseError;
use crate::failpoint;
use crate::files::{META_TOPIC, META_WRITER, write_file};
use crate::fs::{create_dir_durably, rename, sync_dir};
use crate::layout::{part_name, partition_rel, tmp_dir, tmp_path_for};
use crate::manifest::{FileEntry, Manifest};
use crate::metrics as m;
use crate::recover::{commit_lock, finish_swap};
use crate::rows::record_batch;

/// What one commit wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub commit: u64,
    pub files: usize,
    pub rows: u64,
    pub skipped: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Commits `taken` with the partitions' next offsets `next`. After `Ok`, `manifest` (updated
/// in place) names the new commit and its files are in place. After `Err` the root may hold
/// uncommitted files in `_sink/tmp/` or a committed commit whose files still wait there; the
/// caller stops, and the next start repairs the root from the manifest.
pub fn commit(
    root: &Path,
    row_group_size: usize,
    manifest: &mut Manifest,
    taken: Taken,
    next: &BTreeMap<i32, i64>,
) -> Result<Committed, WarehouseError> {
    let started = Instant::now();
    let n = manifest.commit + 1;

    // 1. Every file in _sink/tmp/, fsynced. Nothing is visible to readers yet.
    let written = write_files(
        |rel| tmp_path_for(root, rel),
        &manifest.topic,
        n,
        taken.groups,
        row_group_size,
    )?;
    sync_dir(&tmp_dir(root))?;
    failpoint::hit("sink-before-manifest");

    // 2. The manifest, under the commit lock: the commit point. It is read again from disk
    // because a compaction may have changed the file list since the last commit.
    let _lock = commit_lock(root)?;
    let mut next_manifest = Manifest::load(root)?.ok_or_else(|| {
        WarehouseError::Internal("the manifest vanished while the sink held its root".into())
    })?;
    if next_manifest.commit != manifest.commit || next_manifest.offsets != manifest.offsets {
        return Err(WarehouseError::ManifestMoved {
            expected: manifest.commit,
            found: next_manifest.commit,
        });
    }
    finish_swap(root, &mut next_manifest)?;
    let skipped = record(&mut next_manifest, n, next, &written, &taken.skipped);
    next_manifest.store(root)?;
    *manifest = next_manifest;
    failpoint::hit("sink-after-manifest");

    // 3. Into place, durably. A crash in here is finished by the next start.
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for file in &written {
        let target = root.join(&file.rel);
        let dir = target
            .parent()
            .ok_or_else(|| WarehouseError::Internal(format!("{} has no folder", file.rel)))?;
        create_dir_durably(dir)?;
        rename(&tmp_path_for(root, &file.rel), &target)?;
        dirs.insert(dir.to_path_buf());
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }
    Ok(committed(n, &written, skipped, started))
}

/// One file a commit wrote: its table, its path relative to the root once in place, its entry.
#[derive(Debug, Clone)]
pub struct Written {
    pub table: Table,
    pub rel: String,
    pub entry: FileEntry,
}

/// Writes commit `n`'s file of every (table, day) group at `local(rel)`, durably, where `rel`
/// is the file's path relative to the root once in place.
pub fn write_files(
    local: impl Fn(&str) -> PathBuf,
    topic: &str,
    n: u64,
    groups: BTreeMap<(Table, i32), Vec<Envelope>>,
    row_group_size: usize,
) -> Result<Vec<Written>, WarehouseError> {
    let meta = [
        (META_TOPIC, topic.to_owned()),
        (META_WRITER, format!("sink commit {n}")),
    ];
    let mut written = Vec::with_capacity(groups.len());
    for ((table, day), events) in groups {
        let refs: Vec<&Envelope> = events.iter().collect();
        let batch = record_batch(table, &refs)?;
        let rel = format!("{}/{}", partition_rel(table, day), part_name(n));
        let entry = write_file(&local(&rel), table, &batch, row_group_size, &meta)?;
        written.push(Written { table, rel, entry });
    }
    Ok(written)
}

/// Records commit `n` in `manifest`: its files, the next offsets, the rows and the skips.
/// Returns the records skipped.
pub fn record(
    manifest: &mut Manifest,
    n: u64,
    next: &BTreeMap<i32, i64>,
    written: &[Written],
    skips: &BTreeMap<&'static str, u64>,
) -> u64 {
    manifest.commit = n;
    manifest.offsets = next.clone();
    for file in written {
        manifest.files.insert(file.rel.clone(), file.entry);
        *manifest
            .rows
            .entry(file.table.name().to_owned())
            .or_default() += file.entry.rows;
    }
    let mut skipped = 0;
    for (reason, count) in skips {
        *manifest.skipped.entry((*reason).to_owned()).or_default() += count;
        skipped += count;
    }
    skipped
}

/// What commit `n` did, metered.
pub fn committed(n: u64, written: &[Written], skipped: u64, started: Instant) -> Committed {
    let mut committed = Committed {
        commit: n,
        files: written.len(),
        rows: 0,
        skipped,
        bytes: 0,
        elapsed: Duration::ZERO,
    };
    for file in written {
        let table = file.table.name();
        metrics::counter!(m::ROWS_WRITTEN, "table" => table).increment(file.entry.rows);
        metrics::counter!(m::FILES_COMMITTED, "table" => table).increment(1);
        metrics::counter!(m::BYTES_WRITTEN, "table" => table).increment(file.entry.bytes);
        committed.rows += file.entry.rows;
        committed.bytes += file.entry.bytes;
    }
    committed.elapsed = started.elapsed();
    metrics::counter!(m::COMMITS).increment(1);
    metrics::histogram!(m::COMMIT_SECONDS).record(committed.elapsed.as_secs_f64());
    committed
}
