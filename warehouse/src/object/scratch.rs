//! Local scratch folders for work on an object root, and the sweeping of those a killed
//! process left behind.
//!
//! The sink writes a commit's files into a scratch folder before it puts them, and compaction
//! downloads and merges a partition in one. Both delete their folder when they are done, but a
//! process that is SIGKILLed (or aborts at a crash point) cannot, and what it left may be a
//! whole commit's files: a sink restarted after every crash would fill the temporary folder.
//!
//! So each folder is locked (`flock(2)` on the folder itself) for as long as its process holds
//! it, and every new one first deletes the folders of its kind that nobody holds. The kernel
//! drops a dead process's locks, so a folder that can be locked is one whose owner is gone
//! (unlike a process id, which can be recycled). A folder is created under a hidden name and
//! renamed to its swept name only once locked, so a sweep never finds a live one unlocked; a
//! process killed in between leaves an empty hidden folder. Folders made before scratch
//! folders were locked look abandoned too: during an upgrade, a sink or compaction of the older
//! version on the same machine can lose its folder midway. Its commit or merge then fails, and
//! the next run finishes, drops or redoes it, as after any failure.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::error::{WarehouseError, io};

/// A scratch folder, held (locked) until dropped, then deleted.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    /// The open folder whose lock marks it as held.
    _lock: File,
}

impl Scratch {
    /// A new scratch folder named `<prefix><random>` in the system's temporary folder, after
    /// deleting the ones of the same prefix that no live process holds.
    pub fn new(prefix: &str) -> Result<Scratch, WarehouseError> {
        Scratch::new_in(&std::env::temp_dir(), prefix)
    }

    /// [`Scratch::new`] in `parent`.
    pub fn new_in(parent: &Path, prefix: &str) -> Result<Scratch, WarehouseError> {
        sweep(parent, prefix);
        let hidden = tempfile::Builder::new()
            .prefix(&format!(".{prefix}"))
            .tempdir_in(parent)
            .map_err(io("create", parent))?;
        let lock = File::open(hidden.path()).map_err(io("open", hidden.path()))?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| io("lock", hidden.path())(e.into()))?;
        let name = hidden
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix('.'))
            .map(str::to_owned)
            .ok_or_else(|| {
                io("name", hidden.path())(std::io::Error::other("not a scratch folder name"))
            })?;
        let path = parent.join(name);
        std::fs::rename(hidden.path(), &path).map_err(io("rename", hidden.path()))?;
        // Renamed: from here on `Scratch` deletes it, not the `TempDir`.
        let _ = hidden.keep();
        Ok(Scratch { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(folder = %self.path.display(), %error, "could not delete a scratch folder");
        }
    }
}

/// Deletes the folders `<prefix>…` of `parent` that no process holds. Best effort: a folder
/// that cannot be opened, locked or deleted is left, and logged.
fn sweep(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let held_by_nobody = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
            && entry.file_type().is_ok_and(|t| t.is_dir())
            && File::open(entry.path())
                .is_ok_and(|f| flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok());
        if held_by_nobody {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::info!(
                    folder = %entry.path().display(),
                    "deleted the scratch folder of a process that is gone"
                ),
                Err(error) => tracing::warn!(
                    folder = %entry.path().display(),
                    %error,
                    "could not delete the scratch folder of a process that is gone"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "aperture-test-";

    fn folders(parent: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(parent)
            .expect("listed")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_scratch_folder_is_deleted_when_dropped() {
        let parent = tempfile::tempdir().expect("a temporary folder");
        let scratch = Scratch::new_in(parent.path(), PREFIX).expect("a scratch folder");
        std::fs::write(scratch.path().join("f"), b"x").expect("a file in it");
        assert_eq!(
            scratch.path().parent(),
            Some(parent.path()),
            "{}",
            scratch.path().display()
        );
        assert!(folders(parent.path())[0].starts_with(PREFIX));
        drop(scratch);
        assert!(folders(parent.path()).is_empty());
    }

    #[test]
    fn a_new_scratch_folder_deletes_the_ones_nobody_holds_and_only_those() {
        let parent = tempfile::tempdir().expect("a temporary folder");
        // What a killed process leaves: a folder of files, its lock gone with the process.
        let left = parent.path().join(format!("{PREFIX}gone"));
        std::fs::create_dir(&left).expect("a folder");
        std::fs::write(left.join("part.parquet"), b"x").expect("a file");
        // Another kind's folder, and a file that happens to share the prefix.
        let other = parent.path().join("aperture-other-gone");
        std::fs::create_dir(&other).expect("a folder");
        std::fs::write(parent.path().join(format!("{PREFIX}file")), b"x").expect("a file");

        let held = Scratch::new_in(parent.path(), PREFIX).expect("a scratch folder");
        assert!(!left.exists(), "the folder nobody held is deleted");
        assert!(other.exists() && held.path().exists());

        // A second one while the first is held (its lock is on another open file, so it is
        // refused even in the same process): the first survives.
        let second = Scratch::new_in(parent.path(), PREFIX).expect("a scratch folder");
        assert!(held.path().exists(), "a held folder is kept");
        assert_ne!(held.path(), second.path());
        drop(held);
        drop(second);
        assert_eq!(
            folders(parent.path()),
            ["aperture-other-gone", "aperture-test-file"]
        );
    }
}
