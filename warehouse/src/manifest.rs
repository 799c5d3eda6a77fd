//! The manifest, `_sink/manifest.json`: the one source of truth for what a root holds.
//!
//! It lists every live data file and, for the sink, the next offset of every partition: each
//! record before its partition's offset is in exactly one listed file, or was skipped (not a
//! valid event, or a repeat of an id in its commit). It is only ever replaced whole,
//! atomically (temporary file, fsync, rename, fsync of the folder), and only by a holder of
//! the commit lock, so the offsets and the file list always change together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{WarehouseError, io};
use crate::fs::replace_file;
use crate::layout::{MANIFEST, sink_dir};

/// The manifest format this build reads and writes.
pub const FORMAT: u32 = 1;

/// The commit record of a warehouse root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The topic whose records the root holds; a root holds one topic.
    pub topic: String,
    /// The last sink commit; 0 before the first. Sink files carry it in their names.
    pub commit: u64,
    /// Next offset to read, per partition of the topic.
    pub offsets: BTreeMap<i32, i64>,
    /// Every live data file, by path relative to the root (`<table>/dt=…/<name>`).
    pub files: BTreeMap<String, FileEntry>,
    /// Rows the sink has committed per table, over the root's life (compaction moves rows
    /// between files and leaves this alone, the copies of an event it leaves out included).
    pub rows: BTreeMap<String, u64>,
    /// Records skipped, per reason, over the root's life: not valid events (a validation rule,
    /// `ts_out_of_range`) or repeats of an id within a commit (`duplicate_event_id`).
    pub skipped: BTreeMap<String, u64>,
    /// The last compaction's sequence number; compacted files carry it in their names.
    pub compactions: u64,
    /// A compaction swap that is committed (the file list above already shows its result)
    /// but may not have been carried out on disk yet; whoever takes the commit lock next
    /// finishes it before doing anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Swap>,
    /// On object storage (see [`crate::object`]): the token of the sink that holds the root.
    /// A sink takes the root by writing its token here, which fences the one before it: that
    /// one's next commit finds another writer and stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// Wall-clock time of the last change, ms since the epoch (for operators).
    pub updated_at_ms: i64,
}

/// One live data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub rows: u64,
    /// Size on disk.
    pub bytes: u64,
}

/// A partition folder being replaced by its compacted version (see [`crate::compact`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swap {
    /// The live folder, relative to the root: `<table>/dt=YYYY-MM-DD`.
    pub partition: String,
    /// The staged replacement, relative to the root: `_sink/staging/<seq>`.
    pub staging: String,
    /// The compacted file's name, in the staged folder and, after the swap, in the live one:
    /// how recovery tells whether the swap happened.
    pub output: String,
    /// On object storage, where no folder can be swapped whole: the names of the files merged
    /// away, deleted from the live folder when the swap is carried out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// On object storage: every file the merge wrote (`output` is the first), copied from the
    /// staging prefix into the live folder when the swap is carried out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
}

impl Manifest {
    /// The manifest of a new root for `topic`.
    pub fn empty(topic: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            topic: topic.to_owned(),
            commit: 0,
            offsets: BTreeMap::new(),
            files: BTreeMap::new(),
            rows: BTreeMap::new(),
            skipped: BTreeMap::new(),
            compactions: 0,
            swap: None,
            writer: None,
            updated_at_ms: 0,
        }
    }

    pub fn path(root: &Path) -> PathBuf {
        sink_dir(root).join(MANIFEST)
    }

    /// Reads the manifest of `root`; `None` when the root has none yet.
    pub fn load(root: &Path) -> Result<Option<Manifest>, WarehouseError> {
        let path = Self::path(root);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path)(e)),
        };
        Self::from_bytes(&bytes, path).map(Some)
    }

    /// Parses a manifest read from `path` (a file, or an object's URL).
    pub fn from_bytes(bytes: &[u8], path: PathBuf) -> Result<Manifest, WarehouseError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| WarehouseError::Manifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if manifest.format != FORMAT {
            return Err(WarehouseError::Manifest {
                path,
                reason: format!(
                    "format is {}; this build reads format {FORMAT}",
                    manifest.format
                ),
            });
        }
        Ok(manifest)
    }

    /// Stamps the time of this change and serialises the manifest.
    pub fn to_bytes(&mut self) -> Vec<u8> {
        self.updated_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // Maps of strings and integers always serialise.
        serde_json::to_vec_pretty(self).expect("a manifest serialises to JSON")
    }

    /// Replaces the manifest of `root` with this one, atomically and durably.
    pub fn store(&mut self, root: &Path) -> Result<(), WarehouseError> {
        let bytes = self.to_bytes();
        replace_file(&sink_dir(root), MANIFEST, &bytes)
    }

    /// The live files of one partition folder (`<table>/dt=…`), by name.
    pub fn files_in(&self, partition: &str) -> BTreeMap<String, FileEntry> {
        let prefix = format!("{partition}/");
        self.files
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(path, entry)| (path[prefix.len()..].to_owned(), *entry))
            .collect()
    }

    /// Every partition folder holding at least one live file, relative to the root.
    pub fn partitions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .files
            .keys()
            .filter_map(|path| path.rsplit_once('/').map(|(dir, _)| dir.to_owned()))
            .collect();
        out.dedup();
        out
    }

    /// Rows in the live files of `table`.
    pub fn live_rows(&self, table: &str) -> u64 {
        self.files
            .iter()
            .filter(|(path, _)| path.split('/').next() == Some(table))
            .map(|(_, e)| e.rows)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SINK_DIR;

    #[test]
    fn a_stored_manifest_loads_back_equal_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(SINK_DIR)).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        let mut m = Manifest::empty("events");
        m.commit = 7;
        m.offsets.insert(3, 1234);
        m.files.insert(
            "likes/dt=2025-11-23/part-000000000007.parquet".into(),
            FileEntry {
                rows: 10,
                bytes: 999,
            },
        );
        m.rows.insert("likes".into(), 10);
        m.skipped.insert("json".into(), 1);
        m.swap = Some(Swap {
            partition: "likes/dt=2025-11-23".into(),
            staging: "_sink/staging/000000000001".into(),
            output: "compact-000000000001.parquet".into(),
            ..Swap::default()
        });
        m.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(m));
        let left = crate::fs::entries(&dir.path().join(SINK_DIR)).unwrap();
        assert_eq!(left, vec![MANIFEST.to_owned()]);
    }

    #[test]
    fn a_corrupt_manifest_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(SINK_DIR)).unwrap();
        std::fs::write(Manifest::path(dir.path()), b"{\"format\": 1, \"top").unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("manifest.json"), "{err}");
    }

    #[test]
    fn files_are_found_by_partition_folder() {
        let mut m = Manifest::empty("t");
        let e = FileEntry { rows: 1, bytes: 1 };
        for p in [
            "likes/dt=2025-11-23/part-000000000001.parquet",
            "likes/dt=2025-11-23/part-000000000002.parquet",
            "likes/dt=2025-11-24/part-000000000002.parquet",
            "likes_x/dt=2025-11-23/part-000000000002.parquet",
            "views/dt=2025-11-23/part-000000000002.parquet",
        ] {
            m.files.insert(p.into(), e);
        }
        assert_eq!(m.files_in("likes/dt=2025-11-23").len(), 2);
        assert_eq!(
            m.partitions(),
            [
                "likes/dt=2025-11-23",
                "likes/dt=2025-11-24",
                "likes_x/dt=2025-11-23",
                "views/dt=2025-11-23"
            ]
        );
        assert_eq!(m.live_rows("likes"), 3);
    }
}
