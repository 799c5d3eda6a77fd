//! The file-system steps the warehouse's protocols are made of, each durable and each naming
//! the path it failed on, and the locks that say who may write a root.
//!
//! Three `flock(2)` locks live in `_sink/` (the kernel drops them when their process dies,
//! SIGKILL included, so a crash never leaves a root locked):
//! - `sink.lock`, held by a running sink for its whole life: one sink per root;
//! - `compact.lock`, held by a running compaction: one compaction per root;
//! - `commit.lock`, held for the short moments in which the manifest or the set of files in a
//!   table folder changes (a sink commit, a compaction swap, recovery). It is what lets a sink
//!   and a compaction run side by side on one root.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{WarehouseError, io};
use crate::layout::TMP_PREFIX;

/// Makes a folder's entries (creations, renames, deletions) durable.
pub fn sync_dir(dir: &Path) -> Result<(), WarehouseError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync folder", dir))
}

/// Creates `dir` and any missing parents, making each new entry durable in its parent.
pub fn create_dir_durably(dir: &Path) -> Result<(), WarehouseError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(io("create folder", dir))?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Replaces `dir/name` with `bytes` atomically: a reader (or a restart) sees the old content or
/// the new, never a mix. Writes `dir/.tmp-name`, fsyncs it, renames it over, fsyncs the folder.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WarehouseError> {
    let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
    let target = dir.join(name);
    let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("fsync", &tmp))?;
    drop(file);
    rename(&tmp, &target)?;
    sync_dir(dir)
}

/// Renames `from` to `to` (atomic within one file system).
pub fn rename(from: &Path, to: &Path) -> Result<(), WarehouseError> {
    std::fs::rename(from, to).map_err(io("rename", from))
}

/// Swaps two paths atomically (`renameat2(RENAME_EXCHANGE)`): every reader sees either both
/// before or both after, never a moment with one missing. Linux only, on file systems that
/// support it (ext4, xfs, btrfs, tmpfs).
pub fn exchange(a: &Path, b: &Path) -> Result<(), WarehouseError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .map_err(|e| io("exchange with its staged replacement", b)(e.into()))
}

/// Deletes a file.
pub fn remove(path: &Path) -> Result<(), WarehouseError> {
    std::fs::remove_file(path).map_err(io("delete", path))
}

/// Deletes a folder and everything in it.
pub fn remove_tree(path: &Path) -> Result<(), WarehouseError> {
    std::fs::remove_dir_all(path).map_err(io("delete folder", path))
}

/// Names of the entries of `dir` (none when it does not exist), sorted. Names that are not
/// UTF-8 are not the warehouse's and are left out.
pub fn entries(dir: &Path) -> Result<Vec<String>, WarehouseError> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in read {
        let entry = entry.map_err(io("list", dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// An exclusive `flock` on a file in `_sink/`, released when dropped or when the process dies.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    fn open(path: &Path) -> Result<File, WarehouseError> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io("open lock", path))
    }

    /// Takes the lock or fails at once with [`WarehouseError::Locked`].
    pub fn try_acquire(
        path: &Path,
        holder: &'static str,
        rule: &'static str,
    ) -> Result<Lock, WarehouseError> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(WarehouseError::Locked {
                path: path.to_path_buf(),
                holder,
                rule,
            }),
            Err(TryLockError::Error(e)) => Err(io("lock", path)(e)),
        }
    }

    /// Takes the lock, waiting for its holder to let go (holders of the commit lock keep it
    /// for one commit or one swap).
    pub fn acquire(path: &Path) -> Result<Lock, WarehouseError> {
        let file = Self::open(path)?;
        file.lock().map_err(io("lock", path))?;
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sink.lock");
        let first = Lock::try_acquire(&path, "sink", "one sink per root").unwrap();
        let err = Lock::try_acquire(&path, "sink", "one sink per root").unwrap_err();
        assert!(err.to_string().contains("held by another sink"), "{err}");
        drop(first);
        Lock::try_acquire(&path, "sink", "one sink per root").unwrap();
    }

    #[test]
    fn exchange_swaps_two_folders_with_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("old"), b"1").unwrap();
        std::fs::write(b.join("new"), b"2").unwrap();
        exchange(&b, &a).unwrap();
        assert_eq!(entries(&a).unwrap(), ["new"]);
        assert_eq!(entries(&b).unwrap(), ["old"]);
    }

    #[test]
    fn replace_file_leaves_only_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        replace_file(dir.path(), "m.json", b"one").unwrap();
        replace_file(dir.path(), "m.json", b"two").unwrap();
        assert_eq!(std::fs::read(dir.path().join("m.json")).unwrap(), b"two");
        assert_eq!(entries(dir.path()).unwrap(), ["m.json"]);
    }
}
