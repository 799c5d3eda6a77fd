//! Bringing a root in line with its manifest: at sink start, and whenever a holder of the
//! commit lock finds a compaction swap left half done.
//!
//! The manifest is the truth. Files it lists that still wait under `_sink/tmp/` (a sink crashed
//! between its manifest and its renames) are moved into place; a swap it records is carried
//! out; every file of ours that it does not list (written by a commit that never reached its
//! manifest) is deleted. Nothing the manifest vouches for is ever deleted, and no name the
//! warehouse does not write is touched.

use std::path::{Path, PathBuf};

use aperture_schema::warehouse::Table;

use crate::error::WarehouseError;
use crate::fs::{
    Lock, create_dir_durably, entries, exchange, remove, remove_tree, rename, sync_dir,
};
use crate::layout::{
    COMMIT_LOCK, COMPACT_LOCK, SINK_LOCK, TMP_PREFIX, is_data_file_name, parse_partition_name,
    relative, sink_dir, staging_dir, table_dir, tmp_dir, tmp_path_for,
};
use crate::manifest::Manifest;

/// What recovery found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repairs {
    /// Files of the last commit moved from `_sink/tmp/` to their place.
    pub completed: Vec<PathBuf>,
    /// A compaction swap carried out or cleaned up.
    pub swap_finished: bool,
    /// Files and folders of no commit, deleted.
    pub deleted: Vec<PathBuf>,
}

/// Takes the commit lock of `root`, waiting for a sink commit or a swap in progress to finish.
pub fn commit_lock(root: &Path) -> Result<Lock, WarehouseError> {
    Lock::acquire(&sink_dir(root).join(COMMIT_LOCK))
}

/// Opens `root` for the sink of `topic`: creates it when missing, takes the sink lock (held
/// until the returned [`Lock`] drops), loads or creates the manifest and repairs the root.
pub fn open_for_sink(
    root: &Path,
    topic: &str,
) -> Result<(Lock, Manifest, Repairs), WarehouseError> {
    create_dir_durably(&tmp_dir(root))?;
    create_dir_durably(&staging_dir(root))?;
    let sink_lock = Lock::try_acquire(
        &sink_dir(root).join(SINK_LOCK),
        "sink",
        "one sink writes a warehouse root at a time",
    )?;
    let _commit = commit_lock(root)?;
    let mut manifest = match Manifest::load(root)? {
        Some(m) => m,
        None => {
            // A root with data but no manifest is not ours to clean: deleting "uncommitted"
            // files there could delete someone's warehouse.
            if let Some(example) = first_data_file(root)? {
                return Err(WarehouseError::NoManifest {
                    root: root.to_path_buf(),
                    example,
                });
            }
            let mut m = Manifest::empty(topic);
            m.store(root)?;
            m
        }
    };
    if manifest.topic != topic {
        return Err(WarehouseError::TopicMismatch {
            root: root.to_path_buf(),
            manifest_topic: manifest.topic,
            topic: topic.to_owned(),
        });
    }
    let mut repairs = Repairs {
        swap_finished: finish_swap(root, &mut manifest)?,
        ..Repairs::default()
    };
    complete_commit(root, &manifest, &mut repairs)?;
    delete_strays(root, &manifest, &mut repairs)?;
    // Staging folders belong to a running compaction, if there is one; only when none runs
    // are leftovers of a dead one ours to delete.
    if let Ok(_compaction) = Lock::try_acquire(
        &sink_dir(root).join(COMPACT_LOCK),
        "compaction",
        "its staging folders are its own",
    ) {
        delete_staging_leftovers(root, &manifest, &mut repairs)?;
    }
    Ok((sink_lock, manifest, repairs))
}

/// Carries out the manifest's pending swap, if any, and records that it is done. Returns
/// whether there was one. Call with the commit lock held.
pub fn finish_swap(root: &Path, manifest: &mut Manifest) -> Result<bool, WarehouseError> {
    let Some(swap) = manifest.swap.clone() else {
        return Ok(false);
    };
    let live = root.join(&swap.partition);
    let staged = root.join(&swap.staging);
    if !live.join(&swap.output).is_file() {
        if !staged.join(&swap.output).is_file() {
            return Err(WarehouseError::MissingFile {
                path: live.join(&swap.output),
            });
        }
        if live.is_dir() {
            exchange(&staged, &live)?;
        } else {
            rename(&staged, &live)?;
        }
        if let Some(parent) = live.parent() {
            sync_dir(parent)?;
        }
        tracing::info!(partition = %swap.partition, "finished a compaction swap after a crash");
    }
    // Now the old folder, under the staging name.
    if staged.exists() {
        remove_tree(&staged)?;
        sync_dir(&staging_dir(root))?;
    }
    manifest.swap = None;
    manifest.store(root)?;
    Ok(true)
}

/// Moves the manifest's files still waiting in `_sink/tmp/` into place.
fn complete_commit(
    root: &Path,
    manifest: &Manifest,
    repairs: &mut Repairs,
) -> Result<(), WarehouseError> {
    for rel in manifest.files.keys() {
        let target = root.join(rel);
        if target.is_file() {
            continue;
        }
        let tmp = tmp_path_for(root, rel);
        if !tmp.is_file() {
            return Err(WarehouseError::MissingFile { path: target });
        }
        let dir = target
            .parent()
            .ok_or_else(|| WarehouseError::Internal(format!("{rel} has no folder")))?;
        create_dir_durably(dir)?;
        rename(&tmp, &target)?;
        sync_dir(dir)?;
        repairs.completed.push(target);
    }
    Ok(())
}

/// Deletes what no commit vouches for: uncommitted sink files, our data files the manifest
/// does not list, a half-replaced manifest.
fn delete_strays(
    root: &Path,
    manifest: &Manifest,
    repairs: &mut Repairs,
) -> Result<(), WarehouseError> {
    let tmp = tmp_dir(root);
    for name in entries(&tmp)? {
        let path = tmp.join(name);
        remove(&path)?;
        repairs.deleted.push(path);
    }
    sync_dir(&tmp)?;
    for dir in partition_dirs(root)? {
        let mut touched = false;
        for name in entries(&dir)? {
            let path = dir.join(&name);
            if is_data_file_name(&name) && !manifest.files.contains_key(&relative(root, &path)) {
                tracing::warn!(path = %path.display(), "deleting a data file no commit lists");
                remove(&path)?;
                repairs.deleted.push(path);
                touched = true;
            }
        }
        if touched {
            sync_dir(&dir)?;
        }
    }
    let sink = sink_dir(root);
    for name in entries(&sink)? {
        if name.starts_with(TMP_PREFIX) {
            let path = sink.join(name);
            remove(&path)?;
            repairs.deleted.push(path);
        }
    }
    Ok(())
}

/// Deletes staging folders of compactions that died before their swap was committed. Call
/// with the compaction lock held.
pub fn delete_staging_leftovers(
    root: &Path,
    manifest: &Manifest,
    repairs: &mut Repairs,
) -> Result<(), WarehouseError> {
    let staging = staging_dir(root);
    let pending = manifest.swap.as_ref().map(|s| root.join(&s.staging));
    let mut touched = false;
    for name in entries(&staging)? {
        let path = staging.join(name);
        if Some(&path) != pending.as_ref() {
            remove_tree(&path)?;
            repairs.deleted.push(path);
            touched = true;
        }
    }
    if touched {
        sync_dir(&staging)?;
    }
    Ok(())
}

/// Every `dt=` folder of every table.
pub fn partition_dirs(root: &Path) -> Result<Vec<PathBuf>, WarehouseError> {
    let mut dirs = Vec::new();
    for table in Table::ALL {
        let table_dir = table_dir(root, table);
        for name in entries(&table_dir)? {
            if parse_partition_name(&name).is_some() {
                dirs.push(table_dir.join(name));
            }
        }
    }
    Ok(dirs)
}

fn first_data_file(root: &Path) -> Result<Option<PathBuf>, WarehouseError> {
    for dir in partition_dirs(root)? {
        if let Some(name) = entries(&dir)?.into_iter().find(|n| is_data_file_name(n)) {
            return Ok(Some(dir.join(name)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{part_name, partition_dir, partition_rel};
    use crate::manifest::{FileEntry, Swap};

    const DAY: i32 = 20_415;
    const E: FileEntry = FileEntry { rows: 1, bytes: 1 };

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    fn listed(table: Table, commit: u64) -> String {
        format!("{}/{}", partition_rel(table, DAY), part_name(commit))
    }

    /// The crash between the manifest's rename and the data files' renames: the commit is
    /// durable, so recovery finishes it instead of dropping it.
    #[test]
    fn files_of_the_last_commit_still_waiting_in_tmp_are_moved_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (lock, mut manifest, _) = open_for_sink(root, "t").unwrap();
        touch(&root.join(listed(Table::Likes, 1)));
        touch(&tmp_path_for(root, &listed(Table::Likes, 2)));
        touch(&tmp_path_for(root, &listed(Table::Views, 2)));
        manifest.commit = 2;
        for rel in [
            listed(Table::Likes, 1),
            listed(Table::Likes, 2),
            listed(Table::Views, 2),
        ] {
            manifest.files.insert(rel, E);
        }
        manifest.store(root).unwrap();
        drop(lock);

        let (_lock, loaded, repairs) = open_for_sink(root, "t").unwrap();
        assert_eq!(loaded.files, manifest.files);
        assert_eq!(repairs.completed.len(), 2);
        assert!(repairs.deleted.is_empty(), "{repairs:?}");
        let likes = partition_dir(root, Table::Likes, DAY);
        assert_eq!(entries(&likes).unwrap(), [part_name(1), part_name(2)]);
        assert!(entries(&tmp_dir(root)).unwrap().is_empty());
    }

    /// The crash before the manifest's rename: the commit never happened, so its files go
    /// (wherever they are), and so does a half-written manifest.
    #[test]
    fn files_of_a_commit_that_never_happened_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (lock, mut manifest, _) = open_for_sink(root, "t").unwrap();
        touch(&root.join(listed(Table::Likes, 1)));
        manifest.commit = 1;
        manifest.files.insert(listed(Table::Likes, 1), E);
        manifest.store(root).unwrap();
        touch(&tmp_path_for(root, &listed(Table::Likes, 2)));
        touch(&root.join(listed(Table::Posts, 2)));
        touch(&partition_dir(root, Table::Posts, DAY).join("notes.txt"));
        touch(&root.join("_sink/.tmp-manifest.json"));
        drop(lock);

        let (_lock, _, repairs) = open_for_sink(root, "t").unwrap();
        assert!(repairs.completed.is_empty());
        assert_eq!(repairs.deleted.len(), 3, "{repairs:?}");
        assert_eq!(
            entries(&partition_dir(root, Table::Likes, DAY)).unwrap(),
            [part_name(1)]
        );
        assert_eq!(
            entries(&partition_dir(root, Table::Posts, DAY)).unwrap(),
            ["notes.txt"],
            "a name the warehouse does not write is left alone"
        );
    }

    #[test]
    fn a_swap_recorded_but_not_carried_out_is_carried_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (lock, mut manifest, _) = open_for_sink(root, "t").unwrap();
        let live = partition_dir(root, Table::Likes, DAY);
        touch(&live.join(part_name(1)));
        touch(&live.join(part_name(2)));
        let staged = staging_dir(root).join("000000000001");
        touch(&staged.join("compact-000000000001.parquet"));
        manifest.files.insert(
            format!(
                "{}/compact-000000000001.parquet",
                partition_rel(Table::Likes, DAY)
            ),
            E,
        );
        manifest.swap = Some(Swap {
            partition: partition_rel(Table::Likes, DAY),
            staging: relative(root, &staged),
            output: "compact-000000000001.parquet".into(),
            ..Swap::default()
        });
        manifest.store(root).unwrap();
        drop(lock);

        let (_lock, loaded, repairs) = open_for_sink(root, "t").unwrap();
        assert!(repairs.swap_finished);
        assert_eq!(loaded.swap, None);
        assert_eq!(Manifest::load(root).unwrap().unwrap().swap, None);
        assert_eq!(entries(&live).unwrap(), ["compact-000000000001.parquet"]);
        assert!(!staged.exists(), "the old folder is deleted");
    }

    #[test]
    fn a_root_with_data_but_no_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join(listed(Table::Likes, 4)));
        let err = open_for_sink(dir.path(), "t").unwrap_err();
        assert!(matches!(err, WarehouseError::NoManifest { .. }), "{err}");
    }

    #[test]
    fn a_root_of_another_topic_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_for_sink(dir.path(), "a").unwrap());
        let err = open_for_sink(dir.path(), "b").unwrap_err().to_string();
        assert!(err.contains("holds topic a, not b"), "{err}");
    }

    #[test]
    fn a_second_sink_on_a_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open_for_sink(dir.path(), "a").unwrap();
        let err = open_for_sink(dir.path(), "a").unwrap_err().to_string();
        assert!(err.contains("held by another sink"), "{err}");
    }

    #[test]
    fn a_listed_file_that_is_gone_is_an_error_not_a_silent_loss() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (lock, mut manifest, _) = open_for_sink(root, "t").unwrap();
        manifest.commit = 1;
        manifest.files.insert(listed(Table::Likes, 1), E);
        manifest.store(root).unwrap();
        drop(lock);
        let err = open_for_sink(root, "t").unwrap_err();
        assert!(matches!(err, WarehouseError::MissingFile { .. }), "{err}");
    }
}
