//! Warehouse roots on object storage: `warehouse.root = "s3://bucket/prefix"`, on Amazon S3 or
//! any S3-compatible store that honours conditional writes (`If-Match`, `If-None-Match`), through
//! `object_store`. Credentials, region and endpoint come from the usual `AWS_*` variables
//! (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP` for a store on loopback).
//!
//! The layout is the local one (see [`crate::layout`]); the protocol keeps its promises with
//! what object stores offer instead of what file systems offer:
//!
//! | local root | object root |
//! |---|---|
//! | `flock` locks (one sink, one compaction, commit moments) | the manifest's compare-and-swap |
//! | manifest replaced by rename | manifest replaced by a put with `If-Match` on its ETag |
//! | file renamed into place | object copied into place, then its staged copy deleted |
//! | partition folder swapped whole (`RENAME_EXCHANGE`) | inputs deleted, outputs copied in |
//!
//! # Sink
//!
//! A sink opening the root draws a random token, finishes what the manifest says is half done
//! (a pending compaction swap; files of the last commit still waiting in
//! `_sink/tmp/<token of that commit's sink>/`), and writes its own token into the manifest's
//! `writer`, conditionally on the manifest it read. From then on a sink that opened the root
//! before it is fenced: its next commit finds another writer and stops. Staged files of other
//! tokens are deleted after that, then data files the manifest does not list (a fenced sink's
//! late copy); a sink that finds itself fenced meanwhile deletes nothing more.
//!
//! Commit `n`: the files are written locally and put under `_sink/tmp/<token>/<table>/dt=…/`;
//! then the manifest is read, checked (our token, commit `n - 1`, our offsets) and put with
//! `If-Match` on the ETag read: **that put is the commit**. When it fails on its precondition
//! (a compaction changed the file list meanwhile) it is read, checked and put again. Only then
//! are the files copied to their place and their staged copies deleted. As on a local root,
//! readers never see rows a restart would take back.
//!
//! # Compaction
//!
//! Inputs are read into a local scratch folder (see [`scratch`], which also deletes the ones a
//! killed process left) and merged there as on a local root; the outputs
//! are put under `_sink/staging/<seq>-<token>/`. The swap is recorded in the manifest with its
//! inputs and outputs (the commit point, a conditional put again), then carried out: inputs
//! deleted from the live folder, outputs copied in, staged copies deleted, the record cleared.
//! Whoever reads the manifest next while the record stands (a sink commit, a compaction)
//! carries it out first; every step is idempotent.
//!
//! No object store swaps a set of objects at once, and between a commit's manifest and its
//! copies the committed files are still staged. So SQL does not list the table folders: it
//! reads the files the manifest lists, from their staged copies while they are not in place
//! (see [`read`]).
//! A compaction stages under a sequence number one past the manifest's `compactions`, and
//! commits only while that still holds; a later compaction deletes staging prefixes whose
//! number the manifest has reached (they can no longer commit), so a compaction that can
//! still commit is never robbed of its outputs.

pub mod compact;
pub mod read;
pub mod scratch;
pub mod sink;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aperture_schema::warehouse::Table;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::error::{WarehouseError, io, object};
use crate::layout::{MANIFEST, SINK_DIR};
use crate::manifest::{Manifest, Swap};

/// Where a warehouse lives, as `warehouse.root` says.
#[derive(Debug, Clone)]
pub enum Root {
    /// A folder: a plain path or `file://…`.
    Local(PathBuf),
    /// A prefix in a bucket: `s3://bucket/prefix`.
    Object(ObjectRoot),
}

impl Root {
    /// Reads `warehouse.root`: `s3://bucket/prefix` is on object storage, `file:///path` and a
    /// plain path are local, any other scheme is an error naming the ones supported.
    pub fn parse(root: &Path) -> Result<Root, WarehouseError> {
        let Some((scheme, rest)) = root.to_str().and_then(|t| t.split_once("://")) else {
            return Ok(Root::Local(root.to_path_buf()));
        };
        match scheme {
            "file" => Ok(Root::Local(PathBuf::from(rest))),
            "s3" => ObjectRoot::s3(&root.to_string_lossy()).map(Root::Object),
            other => Err(WarehouseError::Root {
                root: root.display().to_string(),
                reason: format!(
                    "{other}:// is not a supported scheme; a root is a folder (a path or \
                     file:///path) or a prefix of an S3 bucket (s3://bucket/prefix)"
                ),
            }),
        }
    }
}

/// A warehouse root under a prefix of an object store.
#[derive(Debug, Clone)]
pub struct ObjectRoot {
    /// `s3://bucket/prefix`, without a trailing `/`.
    url: Url,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl ObjectRoot {
    /// The root at `s3://bucket/prefix`, with credentials and endpoint from `AWS_*`.
    pub fn s3(text: &str) -> Result<ObjectRoot, WarehouseError> {
        let bad = |reason: String| WarehouseError::Root {
            root: text.to_owned(),
            reason,
        };
        let url = Url::parse(text).map_err(|e| bad(e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("names no bucket; write s3://bucket/prefix".into()));
        }
        let store = AmazonS3Builder::from_env()
            .with_url(text)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Self::new(url, Arc::new(store))
    }

    /// The root at `url` in `store` (which must be the store `url`'s bucket names).
    pub fn new(url: Url, store: Arc<dyn ObjectStore>) -> Result<ObjectRoot, WarehouseError> {
        let prefix =
            ObjectPath::parse(url.path().trim_matches('/')).map_err(|e| WarehouseError::Root {
                root: url.to_string(),
                reason: e.to_string(),
            })?;
        let mut url = url;
        let path = format!("/{prefix}");
        url.set_path(if prefix.as_ref().is_empty() {
            ""
        } else {
            &path
        });
        Ok(ObjectRoot { url, store, prefix })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL the store is registered under in a DataFusion session: `s3://bucket`.
    pub fn store_url(&self) -> Url {
        let mut url = self.url.clone();
        url.set_path("");
        url
    }

    /// The URL of a table's folder, with its trailing `/`.
    pub fn table_url(&self, table: Table) -> String {
        format!("{}/", self.display(table.name()))
    }

    /// The object at `rel` (a `/`-separated path relative to the root).
    pub fn path(&self, rel: &str) -> ObjectPath {
        ObjectPath::from_iter(
            self.prefix
                .parts()
                .chain(rel.split('/').filter(|p| !p.is_empty()).map(PathPart::from)),
        )
    }

    /// The path relative to the root of an object under it.
    pub fn rel(&self, path: &ObjectPath) -> Option<String> {
        let parts = path.prefix_match(&self.prefix)?;
        Some(
            parts
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/"),
        )
    }

    /// The URL of `rel`, for messages.
    pub fn display(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url.as_str().trim_end_matches('/'))
    }

    fn manifest_rel() -> String {
        format!("{SINK_DIR}/{MANIFEST}")
    }

    /// The manifest and the version it was read at; `None` when the root has none yet.
    pub async fn load(&self) -> Result<Option<(Manifest, UpdateVersion)>, WarehouseError> {
        let rel = Self::manifest_rel();
        let got = match self.store.get(&self.path(&rel)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(object("read", self.display(&rel))(e)),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(object("read", self.display(&rel)))?;
        let manifest = Manifest::from_bytes(&bytes, PathBuf::from(self.display(&rel)))?;
        Ok(Some((manifest, version)))
    }

    /// The manifest, which must exist because this process saw it `during` what it does.
    pub async fn load_existing(
        &self,
        during: &str,
    ) -> Result<(Manifest, UpdateVersion), WarehouseError> {
        self.load()
            .await?
            .ok_or_else(|| WarehouseError::Internal(format!("the manifest vanished {during}")))
    }

    /// Puts `manifest` if the stored one is still at `read` (or, for `None`, if there is none
    /// yet). `Ok(false)` when another writer changed it first: read it again and decide anew.
    pub async fn store_manifest(
        &self,
        manifest: &mut Manifest,
        read: Option<&UpdateVersion>,
    ) -> Result<bool, WarehouseError> {
        let rel = Self::manifest_rel();
        let mode = match read {
            Some(version) => PutMode::Update(version.clone()),
            None => PutMode::Create,
        };
        let payload = PutPayload::from(manifest.to_bytes());
        match self
            .store
            .put_opts(&self.path(&rel), payload, PutOptions::from(mode))
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(object("write", self.display(&rel))(e)),
        }
    }

    /// Puts the local file `local` at `rel` (in parts when it is large).
    pub async fn upload(&self, local: &Path, rel: &str) -> Result<(), WarehouseError> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(io("open", local))?;
        let mut writer = BufWriter::new(Arc::clone(&self.store), self.path(rel));
        let written = async {
            tokio::io::copy(&mut file, &mut writer).await?;
            writer.shutdown().await
        }
        .await;
        if let Err(e) = written {
            // Whatever was uploaded of an unfinished multipart upload is dropped.
            let _ = writer.abort().await;
            return Err(WarehouseError::Object {
                action: "write",
                path: self.display(rel),
                source: object_store::Error::Generic {
                    store: "upload",
                    source: Box::new(e),
                },
            });
        }
        Ok(())
    }

    /// Gets `rel` into the local file `local`. `Ok(false)` when there is no such object.
    pub async fn download(&self, rel: &str, local: &Path) -> Result<bool, WarehouseError> {
        let got = match self.store.get(&self.path(rel)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(object("read", self.display(rel))(e)),
        };
        let mut file = tokio::fs::File::create(local)
            .await
            .map_err(io("create", local))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(object("read", self.display(rel)))?;
            file.write_all(&chunk).await.map_err(io("write", local))?;
        }
        file.flush().await.map_err(io("write", local))?;
        Ok(true)
    }

    /// Copies `from` to `to` within the store.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), WarehouseError> {
        self.store
            .copy(&self.path(from), &self.path(to))
            .await
            .map_err(object("copy", self.display(from)))
    }

    /// Deletes `rel`; an object already gone is no error.
    pub async fn delete(&self, rel: &str) -> Result<(), WarehouseError> {
        match self.store.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object("delete", self.display(rel))(e)),
        }
    }

    /// Whether `rel` exists.
    pub async fn exists(&self, rel: &str) -> Result<bool, WarehouseError> {
        match self.store.head(&self.path(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(object("read", self.display(rel))(e)),
        }
    }

    /// Every object under `rel` (all of the root for `""`), by path relative to the root.
    pub async fn list(&self, rel: &str) -> Result<Vec<(String, ObjectMeta)>, WarehouseError> {
        let prefix = self.path(rel);
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(object("list", self.display(rel)))?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| Some((self.rel(&meta.location)?, meta)))
            .collect())
    }

    /// Carries out a swap the manifest records: the inputs deleted from the live folder, the
    /// outputs copied in from staging, their staged copies deleted. Idempotent, and safe to
    /// run beside another process carrying out the same swap.
    pub async fn carry_out(&self, swap: &Swap) -> Result<(), WarehouseError> {
        let live = |name: &str| format!("{}/{name}", swap.partition);
        let staged = |name: &str| format!("{}/{name}", swap.staging);
        // Before anything is deleted: every output is somewhere.
        for name in &swap.outputs {
            if !self.exists(&live(name)).await? && !self.exists(&staged(name)).await? {
                return Err(WarehouseError::MissingFile {
                    path: PathBuf::from(self.display(&live(name))),
                });
            }
        }
        for name in &swap.inputs {
            self.delete(&live(name)).await?;
        }
        crate::failpoint::hit("swap-after-inputs-deleted");
        for name in &swap.outputs {
            if self.exists(&live(name)).await? {
                continue;
            }
            if let Err(e) = self.copy(&staged(name), &live(name)).await {
                // Another process finished this copy and deleted the staged one meanwhile.
                if !self.exists(&live(name)).await? {
                    return Err(e);
                }
            }
        }
        for name in &swap.outputs {
            self.delete(&staged(name)).await?;
        }
        Ok(())
    }
}

/// A runtime for the object store calls of a job that runs on a thread of its own (the sink,
/// compaction), outside any async context.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, WarehouseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("start a runtime for", "the object store"))
}

/// A random token naming one sink's or one compaction's staged objects.
pub(crate) fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A root at `url` in a fresh in-memory store, for unit tests of the protocol's steps.
#[cfg(test)]
pub(crate) fn memory(url: &str) -> ObjectRoot {
    ObjectRoot::new(
        Url::parse(url).unwrap(),
        Arc::new(object_store::memory::InMemory::new()),
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_parse_by_scheme() {
        assert!(matches!(
            Root::parse(Path::new(".aperture/warehouse")).unwrap(),
            Root::Local(p) if p == Path::new(".aperture/warehouse")
        ));
        assert!(matches!(
            Root::parse(Path::new("file:///data/wh")).unwrap(),
            Root::Local(p) if p == Path::new("/data/wh")
        ));
        let err = Root::parse(Path::new("gs://bucket/wh"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gs:// is not a supported scheme"), "{err}");
        let err = Root::parse(Path::new("s3:///wh")).unwrap_err().to_string();
        assert!(err.contains("names no bucket"), "{err}");
    }

    #[test]
    fn paths_are_relative_to_the_prefix() {
        let root = memory("s3://bucket/some/prefix/");
        assert_eq!(root.url().as_str(), "s3://bucket/some/prefix");
        assert_eq!(root.store_url().as_str(), "s3://bucket");
        let path = root.path("likes/dt=2025-11-23/part-000000000001.parquet");
        assert_eq!(
            path.as_ref(),
            "some/prefix/likes/dt=2025-11-23/part-000000000001.parquet"
        );
        assert_eq!(
            root.rel(&path).unwrap(),
            "likes/dt=2025-11-23/part-000000000001.parquet"
        );
        assert_eq!(
            root.table_url(Table::Likes),
            "s3://bucket/some/prefix/likes/"
        );
        assert_eq!(memory("s3://bucket").path("a/b").as_ref(), "a/b");
    }

    #[tokio::test]
    async fn a_manifest_put_against_a_stale_read_is_refused() {
        let root = memory("s3://bucket/wh");
        assert!(root.load().await.unwrap().is_none());
        let mut m = Manifest::empty("events");
        assert!(root.store_manifest(&mut m, None).await.unwrap());
        // A second creator loses.
        assert!(!root.store_manifest(&mut m, None).await.unwrap());
        let (_, read) = root.load().await.unwrap().unwrap();
        m.commit = 1;
        assert!(root.store_manifest(&mut m, Some(&read)).await.unwrap());
        // The version read before that put is stale now.
        m.commit = 2;
        assert!(!root.store_manifest(&mut m, Some(&read)).await.unwrap());
        assert_eq!(root.load().await.unwrap().unwrap().0.commit, 1);
    }

    #[tokio::test]
    async fn a_swap_carried_out_twice_ends_the_same() {
        let root = memory("s3://bucket/wh");
        let put = |rel: &'static str| {
            let root = root.clone();
            async move {
                root.store
                    .put(&root.path(rel), PutPayload::from_static(b"x"))
                    .await
                    .unwrap();
            }
        };
        put("likes/dt=2025-11-23/part-000000000001.parquet").await;
        put("likes/dt=2025-11-23/part-000000000002.parquet").await;
        put("likes/dt=2025-11-23/part-000000000003.parquet").await;
        put("_sink/staging/000000000001-t/compact-000000000001.parquet").await;
        let swap = Swap {
            partition: "likes/dt=2025-11-23".into(),
            staging: "_sink/staging/000000000001-t".into(),
            output: "compact-000000000001.parquet".into(),
            inputs: vec![
                "part-000000000001.parquet".into(),
                "part-000000000002.parquet".into(),
            ],
            outputs: vec!["compact-000000000001.parquet".into()],
        };
        for _ in 0..2 {
            root.carry_out(&swap).await.unwrap();
            let names: Vec<String> = root
                .list("")
                .await
                .unwrap()
                .into_iter()
                .map(|(rel, _)| rel)
                .collect();
            assert_eq!(
                names,
                [
                    "likes/dt=2025-11-23/compact-000000000001.parquet",
                    "likes/dt=2025-11-23/part-000000000003.parquet"
                ]
            );
        }
    }
}
