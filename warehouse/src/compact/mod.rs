//! Compaction: the small files of each (table, day) merged into large sorted ones.
//!
//! The sink writes one file per (table, day) per commit, so a busy day gathers hundreds of
//! small files; readers pay per file (open, footer, statistics). `aperture warehouse compact`
//! merges every partition's files smaller than `warehouse.compact-target-size` (at most
//! [`MAX_FAN_IN`] per pass, passes repeated until at most one small file is left) with a
//! streaming k-way merge ([`merge`]), so the result is sorted by the table's key like every
//! file, and rolls to a new output file at the target size. A second copy of an event in the
//! merged files (the same `event_id` at the same place in the order, as a producer's retry
//! that reached the topic twice and landed in two sink commits) is left out: the sink drops
//! any repeated id within a commit, compaction drops identical copies among the files it
//! merges (not a copy whose original already sits in a file of the target size, and not a
//! second event that reuses an id with other content, which sorts elsewhere).
//!
//! # Swapping a partition in, atomically
//!
//! Readers list the partition folder; the manifest says which files are live. The new files
//! must replace the old ones in both at once, whatever instant a crash or a reader comes at.
//! Moving files one by one cannot do that (between the steps a reader sees both, or neither),
//! so compaction replaces the whole folder:
//!
//! 1. Build the replacement folder `_sink/staging/<seq>/`: the merged files (fsynced).
//! 2. Under the commit lock (so no sink commit adds a file meanwhile): hard-link every other
//!    file of the live folder into the staged one, so it is the live folder with the inputs
//!    replaced by the outputs.
//! 3. Replace the manifest: inputs out, outputs in, and a `swap` record naming the live and
//!    staged folders. **This is the commit point.**
//! 4. Exchange the two folders with one `renameat2(RENAME_EXCHANGE)`: readers see the old
//!    folder or the new, never a mix, never both sets of rows.
//! 5. Delete the old folder (now at the staging name) and clear the `swap` record.
//!
//! A crash before 3 leaves the old files live in the manifest and the folder; the staging
//! folder is deleted by the next compaction or sink start. A crash after 3 leaves a `swap`
//! record, which whoever takes the commit lock next (the sink at its next commit or start, or
//! the next compaction) finishes: exchange if the live folder lacks the output, then delete.
//! So at every instant a reader of the folder counts each row exactly once (old files or new,
//! never both), and the manifest never lists a file that is not, or will not be after
//! recovery, in place. A query that listed the folder just before a swap and opens an old file
//! just after fails with file-not-found and can be retried; it never returns wrong counts.
//!
//! Compaction is idempotent: a partition with at most one small file is left alone, and after
//! one run every partition has at most one. It runs beside a live sink: they share only the
//! commit lock, which each holds for moments. A partition with a listed file not in place yet
//! (a sink commit between its manifest and its renames, or a sink that died there and whose
//! next start moves the files) is left for a later run. One compaction runs per root
//! (`_sink/compact.lock`).

pub mod merge;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aperture_schema::warehouse::Table;

use crate::error::WarehouseError;
use crate::failpoint;
use crate::files::{META_TOPIC, META_WRITER};
use crate::fs::{Lock, create_dir_durably, entries, exchange, remove_tree, sync_dir};
use crate::layout::{COMPACT_LOCK, compact_name, relative, sink_dir, staging_dir};
use crate::manifest::{FileEntry, Manifest, Swap};
use crate::metrics as m;
use crate::object::Root;
use crate::recover::{Repairs, commit_lock, delete_staging_leftovers, finish_swap};

/// Most files merged in one pass: each input holds a file descriptor and a batch in memory.
pub const MAX_FAN_IN: usize = 256;

/// Which partitions to compact.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this table.
    pub table: Option<Table>,
    /// Only this day (days since 1970-01-01).
    pub day: Option<i32>,
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Partitions that had small files merged.
    pub partitions: usize,
    /// Files merged away.
    pub inputs: usize,
    /// Files written.
    pub outputs: usize,
    /// Rows moved.
    pub rows: u64,
    /// Second copies of an event (same sort key, `event_id` included) left out of the merge.
    pub duplicates: u64,
}

/// Settings of one compaction run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: PathBuf,
    /// Files smaller than this are merged; outputs roll at this size.
    pub target_size: u64,
    pub row_group_size: usize,
    /// Most files merged in one pass ([`MAX_FAN_IN`]).
    pub fan_in: usize,
}

impl Settings {
    pub fn from_config(config: &aperture_schema::Config) -> Settings {
        Settings {
            root: config.warehouse.root.clone(),
            target_size: config.warehouse.compact_target_size,
            row_group_size: config.warehouse.row_group_size,
            fan_in: MAX_FAN_IN,
        }
    }
}

/// Compacts the partitions of `settings.root` that `filter` selects.
pub fn compact(settings: &Settings, filter: &Filter) -> Result<Report, WarehouseError> {
    let local = match Root::parse(&settings.root)? {
        Root::Object(root) => return crate::object::compact::compact(&root, settings, filter),
        Root::Local(path) => Settings {
            root: path,
            ..settings.clone()
        },
    };
    let settings = &local;
    let root = &settings.root;
    if Manifest::load(root)?.is_none() {
        return Err(WarehouseError::Manifest {
            path: Manifest::path(root),
            reason: "there is none; a warehouse root gets one when the sink first opens it".into(),
        });
    }
    create_dir_durably(&staging_dir(root))?;
    let _compaction = Lock::try_acquire(
        &sink_dir(root).join(COMPACT_LOCK),
        "compaction",
        "one compaction runs on a root at a time",
    )?;
    let manifest = {
        let _lock = commit_lock(root)?;
        let mut manifest = Manifest::load(root)?.ok_or_else(manifest_vanished)?;
        finish_swap(root, &mut manifest)?;
        delete_staging_leftovers(root, &manifest, &mut Repairs::default())?;
        manifest
    };
    let mut report = Report::default();
    for partition in manifest.partitions() {
        let Some((table, _)) = filter.selects(&partition) else {
            continue;
        };
        let mut compacted = false;
        // Each pass merges up to `fan_in` small files; a partition of thousands needs a few.
        loop {
            let manifest = Manifest::load(root)?.ok_or_else(manifest_vanished)?;
            let Some(small) = small_files(&manifest.files_in(&partition), settings) else {
                break;
            };
            let Some(pass) = compact_files(settings, &manifest, table, &partition, &small)? else {
                break;
            };
            report.add(small.len(), &pass);
            compacted = true;
        }
        if compacted {
            report.partitions += 1;
        }
    }
    Ok(report)
}

impl Filter {
    /// The table and day of a manifest partition folder, if the filter selects it.
    pub(crate) fn selects(&self, partition: &str) -> Option<(Table, i32)> {
        let (table, day) = parse_partition(partition)?;
        (self.table.is_none_or(|t| t == table) && self.day.is_none_or(|d| d == day))
            .then_some((table, day))
    }
}

impl Report {
    /// Counts one pass that merged `inputs` files.
    pub(crate) fn add(&mut self, inputs: usize, pass: &Pass) {
        self.inputs += inputs;
        self.outputs += pass.outputs;
        self.rows += pass.rows;
        self.duplicates += pass.duplicates;
    }
}

/// The files of one pass over a partition's `live` files: the small ones, at most
/// `settings.fan_in`; `None` when fewer than two are small (nothing to merge).
pub(crate) fn small_files(
    live: &BTreeMap<String, FileEntry>,
    settings: &Settings,
) -> Option<Vec<String>> {
    let small: Vec<String> = live
        .iter()
        .filter(|(_, e)| e.bytes < settings.target_size)
        .map(|(name, _)| name.clone())
        .take(settings.fan_in.max(2))
        .collect();
    (small.len() >= 2).then_some(small)
}

/// The table and day of a manifest partition folder `<table>/dt=YYYY-MM-DD`.
fn parse_partition(partition: &str) -> Option<(Table, i32)> {
    let (table, dt) = partition.split_once('/')?;
    Some((
        Table::parse(table)?,
        crate::layout::parse_partition_name(dt)?,
    ))
}

fn manifest_vanished() -> WarehouseError {
    WarehouseError::Internal("the manifest vanished during compaction".into())
}

/// What one merge of a partition's files did.
pub(crate) struct Pass {
    pub outputs: usize,
    pub rows: u64,
    pub duplicates: u64,
}

/// Merges `inputs` (names of live files of `partition` in `manifest`, the version that picked
/// them) and swaps the result in. `None` when the partition is left for a later run because an
/// input is listed but not in place yet: the sink renames a commit's files into place after
/// its manifest (under the commit lock, which the manifest read that picked `inputs` did not
/// take), or died between the two and its next start moves them.
fn compact_files(
    settings: &Settings,
    manifest: &Manifest,
    table: Table,
    partition: &str,
    inputs: &[String],
) -> Result<Option<Pass>, WarehouseError> {
    let root = &settings.root;
    let live_dir = root.join(partition);
    // Once in place, a listed file stays until a compaction (this one) merges it away.
    if let Some(name) = inputs.iter().find(|n| !live_dir.join(n).exists()) {
        tracing::info!(partition, file = %name, "a listed file is not in place yet; later");
        return Ok(None);
    }
    // Sequence numbers only this compaction allocates (it holds the compaction lock); one per
    // output file, recorded in the manifest at the swap. Only compaction changes `compactions`
    // and the entries of `inputs`, so `manifest` still holds them as they are.
    let first_seq = manifest.compactions + 1;
    let staged = staging_dir(root).join(format!("{first_seq:012}"));
    if staged.exists() {
        remove_tree(&staged)?;
    }
    create_dir_durably(&staged)?;

    // 1. The merged files, outside the lock: this is the slow part.
    let paths: Vec<PathBuf> = inputs.iter().map(|n| live_dir.join(n)).collect();
    let merged = merge_partition(
        settings, table, partition, manifest, inputs, &paths, &staged,
    );
    let merge::Merged {
        outputs,
        duplicates,
    } = match merged {
        Ok(merged) => merged,
        Err(e) => {
            remove_tree(&staged)?;
            return Err(e);
        }
    };
    let out_rows: u64 = outputs.iter().map(|(_, e)| e.rows).sum();

    // 2-5 under the commit lock: no sink commit can add a file to the folder meanwhile.
    let _lock = commit_lock(root)?;
    let mut manifest = Manifest::load(root)?.ok_or_else(manifest_vanished)?;
    finish_swap(root, &mut manifest)?;
    let live = manifest.files_in(partition);
    if let Some(gone) = inputs.iter().find(|n| !live.contains_key(*n)) {
        return Err(WarehouseError::Internal(format!(
            "{partition}/{gone} left the manifest during compaction, which only compaction does"
        )));
    }
    // 2. Everything else in the live folder joins the staged one, by hard link: the files the
    // sink committed since, and any file that is not the warehouse's.
    for name in entries(&live_dir)? {
        if !inputs.contains(&name) {
            std::fs::hard_link(live_dir.join(&name), staged.join(&name)).map_err(
                crate::error::io("link into the staged folder", live_dir.join(&name)),
            )?;
        }
    }
    sync_dir(&staged)?;
    // 3. The commit point.
    for name in inputs {
        manifest.files.remove(&format!("{partition}/{name}"));
    }
    let files: BTreeMap<String, FileEntry> = outputs
        .iter()
        .map(|(name, entry)| (format!("{partition}/{name}"), *entry))
        .collect();
    manifest.files.extend(files);
    manifest.compactions = first_seq + outputs.len().saturating_sub(1) as u64;
    let output = outputs
        .first()
        .map(|(name, _)| name.clone())
        .ok_or_else(|| WarehouseError::Internal(format!("merging {partition} wrote no file")))?;
    manifest.swap = Some(Swap {
        partition: partition.to_owned(),
        staging: relative(root, &staged),
        output,
        ..Swap::default()
    });
    manifest.store(root)?;
    failpoint::hit("compact-after-manifest");
    // 4. The swap readers see.
    exchange(&staged, &live_dir)?;
    if let Some(table_dir) = live_dir.parent() {
        sync_dir(table_dir)?;
    }
    sync_dir(&staging_dir(root))?;
    failpoint::hit("compact-after-swap");
    // 5. The old folder, and the record of the swap.
    remove_tree(&staged)?;
    sync_dir(&staging_dir(root))?;
    manifest.swap = None;
    manifest.store(root)?;
    metrics::counter!(m::FILES_COMPACTED, "table" => table.name()).increment(inputs.len() as u64);
    tracing::info!(
        partition,
        inputs = inputs.len(),
        outputs = outputs.len(),
        rows = out_rows,
        duplicates,
        "compacted"
    );
    Ok(Some(Pass {
        outputs: outputs.len(),
        rows: out_rows,
        duplicates,
    }))
}

/// Merges `paths`, the local copies of the live files `inputs` of `partition` as `manifest`
/// lists them, into new files in `dir` numbered from one past the manifest's `compactions`,
/// and checks that every row read was written or left out as a duplicate.
pub(crate) fn merge_partition(
    settings: &Settings,
    table: Table,
    partition: &str,
    manifest: &Manifest,
    inputs: &[String],
    paths: &[PathBuf],
    dir: &Path,
) -> Result<merge::Merged, WarehouseError> {
    let first_seq = manifest.compactions + 1;
    let meta = [
        (META_TOPIC, manifest.topic.clone()),
        (
            META_WRITER,
            format!("compaction of {} files of {partition}", inputs.len()),
        ),
    ];
    let merged = merge::merge(
        table,
        paths,
        dir,
        |k| compact_name(first_seq + k as u64),
        settings.target_size,
        settings.row_group_size,
        &meta,
    )?;
    let live = manifest.files_in(partition);
    let in_rows: u64 = inputs
        .iter()
        .filter_map(|n| live.get(n))
        .map(|e| e.rows)
        .sum();
    let out_rows: u64 = merged.outputs.iter().map(|(_, e)| e.rows).sum();
    if in_rows != out_rows + merged.duplicates {
        return Err(WarehouseError::Internal(format!(
            "merging {partition} read {in_rows} rows but wrote {out_rows} and left out {} \
             duplicates",
            merged.duplicates
        )));
    }
    Ok(merged)
}

/// The live files of a root as the manifest lists them, for callers that read the warehouse
/// without a DataFusion catalog (tests, tools).
pub fn live_files(root: &Path) -> Result<Vec<PathBuf>, WarehouseError> {
    Ok(Manifest::load(root)?
        .map(|m| m.files.keys().map(|rel| root.join(rel)).collect())
        .unwrap_or_default())
}
