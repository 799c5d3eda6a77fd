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
    let meta = [
        (META_TOPIC, manifest.topic.clone()),
        (META_WRITER, format!("sink commit {n}")),
    ];

    // 1. Every file in _sink/tmp/, fsynced. Nothing is visible to readers yet.
    let mut written: Vec<(Table, String, FileEntry)> = Vec::new();
    for ((table, day), events) in taken.groups {
        let refs: Vec<&Envelope> = events.iter().collect();
        let batch = record_batch(table, &refs)?;
        let rel = format!("{}/{}", partition_rel(table, day), part_name(n));
        let entry = write_file(
            &tmp_path_for(root, &rel),
            table,
            &batch,
            row_group_size,
            &meta,
        )?;
        written.push((table, rel, entry));
    }
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
    next_manifest.commit = n;
    next_manifest.offsets = next.clone();
    for (table, rel, entry) in &written {
        next_manifest.files.insert(rel.clone(), *entry);
        *next_manifest
            .rows
            .entry(table.name().to_owned())
            .or_default() += entry.rows;
    }
    let mut skipped = 0;
    for (reason, count) in &taken.skipped {
        *next_manifest
            .skipped
            .entry((*reason).to_owned())
            .or_default() += count;
        skipped += count;
    }
    next_manifest.store(root)?;
    *manifest = next_manifest;
    failpoint::hit("sink-after-manifest");

    // 3. Into place, durably. A crash in here is finished by the next start.
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for (_, rel, _) in &written {
        let target = root.join(rel);
        let dir = target
            .parent()
            .ok_or_else(|| WarehouseError::Internal(format!("{rel} has no folder")))?;
        create_dir_durably(dir)?;
        rename(&tmp_path_for(root, rel), &target)?;
        dirs.insert(dir.to_path_buf());
    }
    for dir in &dirs {
        sync_dir(dir)?;
    }

    let mut committed = Committed {
        commit: n,
        files: written.len(),
        rows: 0,
        skipped,
        bytes: 0,
        elapsed: Duration::ZERO,
    };
    for (table, _, entry) in &written {
        metrics::counter!(m::ROWS_WRITTEN, "table" => table.name()).increment(entry.rows);
        metrics::counter!(m::FILES_COMMITTED, "table" => table.name()).increment(1);
        metrics::counter!(m::BYTES_WRITTEN, "table" => table.name()).increment(entry.bytes);
        committed.rows += entry.rows;
        committed.bytes += entry.bytes;
    }
    committed.elapsed = started.elapsed();
    metrics::counter!(m::COMMITS).increment(1);
    metrics::histogram!(m::COMMIT_SECONDS).record(committed.elapsed.as_secs_f64());
    Ok(committed)
}
