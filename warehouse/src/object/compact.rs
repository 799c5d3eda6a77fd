//! Compaction of an object root: the merge of [`crate::compact::merge`] on local copies of the
//! inputs, and the swap recorded in the manifest and carried out object by object (the
//! protocol is in the [module docs](super)).

use std::path::PathBuf;

use aperture_schema::warehouse::Table;

use super::scratch::Scratch;
use super::{ObjectRoot, runtime, token};
use crate::compact::{Filter, Pass, Report, Settings, merge, merge_partition, small_files};
use crate::error::{WarehouseError, io};
use crate::layout::{SINK_DIR, STAGING_DIR};
use crate::manifest::{FileEntry, Manifest, Swap};
use crate::metrics as m;

/// Compacts the partitions of `root` that `filter` selects.
pub fn compact(
    root: &ObjectRoot,
    settings: &Settings,
    filter: &Filter,
) -> Result<Report, WarehouseError> {
    runtime()?.block_on(run(root, settings, filter))
}

async fn run(
    root: &ObjectRoot,
    settings: &Settings,
    filter: &Filter,
) -> Result<Report, WarehouseError> {
    let (manifest, _) = root.load().await?.ok_or_else(|| WarehouseError::Manifest {
        path: PathBuf::from(root.display(&format!("{SINK_DIR}/manifest.json"))),
        reason: "there is none; a warehouse root gets one when the sink first opens it".into(),
    })?;
    if let Some(swap) = &manifest.swap {
        root.carry_out(swap).await?;
        clear_swap(root, swap).await?;
    }
    delete_abandoned_staging(root, &manifest).await?;
    let token = token();
    let mut report = Report::default();
    for partition in manifest.partitions() {
        let Some((table, _)) = filter.selects(&partition) else {
            continue;
        };
        let mut compacted = false;
        loop {
            let (manifest, _) = root.load_existing("during compaction").await?;
            let Some(small) = small_files(&manifest.files_in(&partition), settings) else {
                break;
            };
            let Some(pass) =
                compact_files(root, settings, table, &partition, &small, &token).await?
            else {
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

/// Merges `inputs` (names of live files of `partition`) and swaps the result in. `None` when
/// the partition is left for a later run: an input is not in place yet (its commit is still
/// being copied in), or another compaction took the inputs first.
async fn compact_files(
    root: &ObjectRoot,
    settings: &Settings,
    table: Table,
    partition: &str,
    inputs: &[String],
    token: &str,
) -> Result<Option<Pass>, WarehouseError> {
    let scratch = Scratch::new("aperture-compact-")?;
    let (in_dir, out_dir) = (scratch.path().join("in"), scratch.path().join("out"));
    for dir in [&in_dir, &out_dir] {
        std::fs::create_dir(dir).map_err(io("create", dir))?;
    }
    let mut paths = Vec::with_capacity(inputs.len());
    for name in inputs {
        let local = in_dir.join(name);
        if !root
            .download(&format!("{partition}/{name}"), &local)
            .await?
        {
            tracing::info!(partition, file = %name, "a listed file is not in place yet; later");
            return Ok(None);
        }
        paths.push(local);
    }

    // The merge, on the local copies: the slow part, before any commit.
    let (manifest, _) = root.load_existing("during compaction").await?;
    let live = manifest.files_in(partition);
    if inputs.iter().any(|n| !live.contains_key(n)) {
        // Another compaction merged some of them meanwhile.
        return Ok(None);
    }
    let first_seq = manifest.compactions + 1;
    let merge::Merged {
        outputs,
        duplicates,
    } = merge_partition(
        settings, table, partition, &manifest, inputs, &paths, &out_dir,
    )?;
    let out_rows: u64 = outputs.iter().map(|(_, e)| e.rows).sum();
    let staging = format!("{SINK_DIR}/{STAGING_DIR}/{first_seq:012}-{token}");
    for (name, _) in &outputs {
        root.upload(&out_dir.join(name), &format!("{staging}/{name}"))
            .await?;
    }
    let swap = Swap {
        partition: partition.to_owned(),
        staging: staging.clone(),
        output: outputs
            .first()
            .map(|(name, _)| name.clone())
            .ok_or_else(|| {
                WarehouseError::Internal(format!("merging {partition} wrote no file"))
            })?,
        inputs: inputs.to_vec(),
        outputs: outputs.iter().map(|(name, _)| name.clone()).collect(),
    };

    // The commit point: the manifest put against the version read.
    loop {
        let (mut manifest, read) = root.load_existing("during compaction").await?;
        if let Some(pending) = manifest.swap.take() {
            root.carry_out(&pending).await?;
        }
        let live = manifest.files_in(partition);
        if manifest.compactions >= first_seq || inputs.iter().any(|n| !live.contains_key(n)) {
            // Another compaction got there first; its result stands.
            for (name, _) in &outputs {
                root.delete(&format!("{staging}/{name}")).await?;
            }
            return Ok(None);
        }
        for name in inputs {
            manifest.files.remove(&format!("{partition}/{name}"));
        }
        manifest.files.extend(
            outputs
                .iter()
                .map(|(name, entry): &(String, FileEntry)| (format!("{partition}/{name}"), *entry)),
        );
        manifest.compactions = first_seq + outputs.len().saturating_sub(1) as u64;
        manifest.swap = Some(swap.clone());
        if root.store_manifest(&mut manifest, Some(&read)).await? {
            break;
        }
    }
    crate::failpoint::hit("compact-after-manifest");
    root.carry_out(&swap).await?;
    crate::failpoint::hit("compact-after-swap");
    clear_swap(root, &swap).await?;
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

/// Clears the manifest's record of `swap`, once carried out (unless someone already did).
async fn clear_swap(root: &ObjectRoot, swap: &Swap) -> Result<(), WarehouseError> {
    loop {
        let Some((mut manifest, read)) = root.load().await? else {
            return Ok(());
        };
        if manifest.swap.as_ref() != Some(swap) {
            return Ok(());
        }
        manifest.swap = None;
        if root.store_manifest(&mut manifest, Some(&read)).await? {
            return Ok(());
        }
    }
}

/// Deletes staged outputs of compactions that can no longer commit. A compaction stages under
/// `<seq>-<token>`, `seq` one past the manifest's `compactions` when it read it, and commits
/// only while `compactions` is still below `seq`; so a prefix whose `seq` the manifest's
/// `compactions` has reached (read before listing) is dead, unless it is the pending swap's.
async fn delete_abandoned_staging(
    root: &ObjectRoot,
    manifest: &Manifest,
) -> Result<(), WarehouseError> {
    let staging = format!("{SINK_DIR}/{STAGING_DIR}/");
    for (rel, _) in root.list(&staging).await? {
        let prefix = rel[staging.len()..].split('/').next().unwrap_or_default();
        let seq = prefix.split('-').next().and_then(|s| s.parse::<u64>().ok());
        let pending = manifest
            .swap
            .as_ref()
            .is_some_and(|s| rel.starts_with(&format!("{}/", s.staging)));
        if !pending && seq.is_some_and(|seq| seq <= manifest.compactions) {
            root.delete(&rel).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    #[tokio::test]
    async fn only_staging_that_can_no_longer_commit_is_deleted() {
        let root = crate::object::memory("s3://bucket/wh");
        for rel in [
            "_sink/staging/000000000001-dead/compact-000000000001.parquet",
            "_sink/staging/000000000002-pending/compact-000000000002.parquet",
            "_sink/staging/000000000003-running/compact-000000000003.parquet",
        ] {
            root.store()
                .put(&root.path(rel), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let mut manifest = Manifest::empty("events");
        manifest.compactions = 2;
        manifest.swap = Some(Swap {
            staging: "_sink/staging/000000000002-pending".into(),
            ..Swap::default()
        });
        delete_abandoned_staging(&root, &manifest).await.unwrap();
        let left: Vec<String> = root
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|(rel, _)| rel)
            .collect();
        assert_eq!(
            left,
            [
                "_sink/staging/000000000002-pending/compact-000000000002.parquet",
                "_sink/staging/000000000003-running/compact-000000000003.parquet"
            ]
        );
    }
}
