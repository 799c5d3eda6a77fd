//! Reading an object root as its manifest stands: what SQL sessions read `s3://` roots through.
//!
//! Listing the table folders is not enough on an object store. Between a commit's manifest and
//! the copies that follow it, the committed files are still staged (`_sink/tmp/<token>/…`),
//! and a sink that dies there leaves them so until the next one starts. During a compaction
//! swap, the inputs are deleted before the outputs are copied in from staging. A reader that
//! listed the folders would miss rows the manifest holds, for a moment or, after a crash, for
//! as long as no sink or compaction runs.
//!
//! [`SnapshotStore`] wraps the root's store. [`SnapshotStore::refresh`] reads the manifest,
//! once per statement; from then on, listing a table folder answers exactly the files that
//! manifest lists, each under its live path, so partition values still come from the folder
//! names. A listed file not yet in place is read from its staged copy, and from its live path
//! again if it was copied in and the staged copy deleted meanwhile. Files in place that the
//! manifest does not list (inputs of a swap not yet deleted, a fenced sink's late copy) are
//! left out. Paths outside the root's tables pass through unchanged.
//!
//! A statement can still find a file gone: a compaction that committed after the statement's
//! manifest was read may delete its inputs. The statement then fails with `NotFound` naming
//! the file (when it is planned, saying to run it again), and can be run again. It never reads
//! a row twice or leaves one out without saying so.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use aperture_schema::warehouse::Table;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::ObjectRoot;
use super::sink::staged_rel;
use crate::error::WarehouseError;
use crate::manifest::Manifest;

/// An object root's store, read as of the manifest of the last [`SnapshotStore::refresh`].
/// Read-only: writes are refused.
#[derive(Debug)]
pub struct SnapshotStore {
    root: ObjectRoot,
    /// `None` until the first refresh.
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// Files found staged when a table was listed: live path → the staged copy read instead.
    /// Kept across refreshes, so a statement planned before a refresh still reads through
    /// them: a live name always holds the bytes of its staged copy, and a staged copy deleted
    /// meanwhile falls back to the live path.
    redirects: Arc<Redirects>,
}

type Redirects = Mutex<HashMap<ObjectPath, ObjectPath>>;

/// What one manifest says is in the tables, and where to find what is not in place yet.
#[derive(Debug, Default)]
struct Snapshot {
    /// Every live file the manifest lists, by its live path: the places to read it from when
    /// it is not there yet, best first.
    files: BTreeMap<ObjectPath, Vec<ObjectPath>>,
}

impl Snapshot {
    fn of(root: &ObjectRoot, manifest: Option<&Manifest>) -> Snapshot {
        let Some(manifest) = manifest else {
            return Snapshot::default();
        };
        let files = manifest
            .files
            .keys()
            .map(|rel| {
                let mut staged = Vec::new();
                if let Some(swap) = &manifest.swap
                    && let Some((partition, name)) = rel.rsplit_once('/')
                    && partition == swap.partition
                    && swap.outputs.iter().any(|output| output == name)
                {
                    staged.push(root.path(&format!("{}/{name}", swap.staging)));
                }
                if let Some(writer) = &manifest.writer {
                    staged.push(root.path(&staged_rel(writer, rel)));
                }
                (root.path(rel), staged)
            })
            .collect();
        Snapshot { files }
    }
}

impl SnapshotStore {
    /// The store of `root`. Its table folders can be listed once [`SnapshotStore::refresh`] has
    /// read the manifest.
    pub fn new(root: ObjectRoot) -> SnapshotStore {
        SnapshotStore {
            root,
            snapshot: Mutex::default(),
            redirects: Arc::default(),
        }
    }

    fn redirect(&self, location: &ObjectPath) -> Option<ObjectPath> {
        self.redirects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(location)
            .cloned()
    }

    /// Reads the manifest again: what the tables hold from now on. A root without a manifest
    /// holds nothing.
    pub async fn refresh(&self) -> Result<(), WarehouseError> {
        let manifest = self.root.load().await?.map(|(manifest, _)| manifest);
        let snapshot = Arc::new(Snapshot::of(&self.root, manifest.as_ref()));
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
        Ok(())
    }

    /// The last manifest read; listing a table before any is a bug of the caller.
    fn current(&self) -> object_store::Result<Arc<Snapshot>> {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| object_store::Error::Generic {
                store: "SnapshotStore",
                source: "bug: a table was listed before the manifest was read \
                         (statements go through sql::plan)"
                    .into(),
            })
    }

    /// `read` of the staged copy `location` is redirected to, if any and still there, else of
    /// `location` itself.
    async fn staged_first<T, F, Fut>(
        &self,
        location: &ObjectPath,
        read: F,
    ) -> object_store::Result<T>
    where
        F: Fn(ObjectPath) -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        if let Some(staged) = self.redirect(location) {
            match read(staged).await {
                Err(object_store::Error::NotFound { .. }) => {}
                got => return got,
            }
        }
        read(location.clone()).await
    }

    /// Whether `prefix` is (in) a table folder of the root, which the snapshot answers for.
    fn in_tables(&self, prefix: &ObjectPath) -> bool {
        self.root.rel(prefix).is_some_and(|rel| {
            let table = rel.split('/').next().unwrap_or_default();
            Table::ALL.iter().any(|t| t.name() == table)
        })
    }

    fn read_only(operation: &str) -> object_store::Error {
        object_store::Error::NotImplemented {
            operation: format!("{operation} (SQL reads a warehouse root, never writes it)"),
            implementer: "SnapshotStore".into(),
        }
    }
}

impl std::fmt::Display for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotStore({})", self.root.url())
    }
}

/// The files of `snapshot` under `prefix`: those in place as `inner` lists them, and those
/// still staged under their live paths (recorded as redirects).
async fn list_snapshot(
    inner: Arc<dyn ObjectStore>,
    snapshot: Arc<Snapshot>,
    redirects: Arc<Redirects>,
    prefix: ObjectPath,
) -> object_store::Result<Vec<ObjectMeta>> {
    let mut in_place: HashMap<ObjectPath, ObjectMeta> = inner
        .list(Some(&prefix))
        .map_ok(|meta| (meta.location.clone(), meta))
        .try_collect()
        .await?;
    let mut out = Vec::new();
    for (live, staged) in &snapshot.files {
        if live.prefix_match(&prefix).is_none() {
            continue;
        }
        if let Some(meta) = in_place.remove(live) {
            out.push(meta);
            continue;
        }
        out.push(find_staged(inner.as_ref(), &redirects, live, staged).await?);
    }
    Ok(out)
}

/// A listed file that is not in place: its staged copy, under its live path.
async fn find_staged(
    inner: &dyn ObjectStore,
    redirects: &Redirects,
    live: &ObjectPath,
    staged: &[ObjectPath],
) -> object_store::Result<ObjectMeta> {
    for path in staged {
        match inner.head(path).await {
            Ok(meta) => {
                redirects
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(live.clone(), path.clone());
                return Ok(ObjectMeta {
                    location: live.clone(),
                    ..meta
                });
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    // Copied in since the listing, its staged copy deleted; or gone.
    match inner.head(live).await {
        Err(object_store::Error::NotFound { path, .. }) => Err(object_store::Error::NotFound {
            path,
            source: "the manifest read when the statement started lists it, and it is neither \
                     in place nor staged: a compaction has replaced it since; run the statement \
                     again"
                .into(),
        }),
        found => found,
    }
}

#[async_trait]
impl ObjectStore for SnapshotStore {
    async fn put_opts(
        &self,
        _location: &ObjectPath,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(Self::read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _location: &ObjectPath,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(Self::read_only("put_multipart"))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let store = self.root.store();
        let mut got = self
            .staged_first(location, |path| {
                let options = options.clone();
                async move { store.get_opts(&path, options).await }
            })
            .await?;
        got.meta.location = location.clone();
        Ok(got)
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let store = self.root.store();
        self.staged_first(location, |path| async move {
            store.get_ranges(&path, ranges).await
        })
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        locations.map(|_| Err(Self::read_only("delete"))).boxed()
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = Arc::clone(self.root.store());
        match prefix {
            Some(prefix) if self.in_tables(prefix) => {
                let snapshot = self.current();
                let redirects = Arc::clone(&self.redirects);
                let prefix = prefix.clone();
                let listed =
                    async move { list_snapshot(inner, snapshot?, redirects, prefix).await };
                stream::once(listed)
                    .map_ok(|metas| stream::iter(metas.into_iter().map(Ok)))
                    .try_flatten()
                    .boxed()
            }
            _ => inner.list(prefix),
        }
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        let inner = Arc::clone(self.root.store());
        let Some(prefix) = prefix.filter(|p| self.in_tables(p)) else {
            return inner.list_with_delimiter(prefix).await;
        };
        let metas = list_snapshot(
            inner,
            self.current()?,
            Arc::clone(&self.redirects),
            prefix.clone(),
        )
        .await?;
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        for meta in metas {
            let below: Vec<_> = meta
                .location
                .prefix_match(prefix)
                .map(|parts| parts.collect())
                .unwrap_or_default();
            if below.len() > 1 {
                let folder =
                    ObjectPath::from_iter(prefix.parts().chain(below[..1].iter().cloned()));
                if !result.common_prefixes.contains(&folder) {
                    result.common_prefixes.push(folder);
                }
            } else {
                result.objects.push(meta);
            }
        }
        Ok(result)
    }

    async fn copy_opts(
        &self,
        _from: &ObjectPath,
        _to: &ObjectPath,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(Self::read_only("copy"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
    use url::Url;

    use super::SnapshotStore;
    use crate::manifest::{FileEntry, Manifest, Swap};
    use crate::object::ObjectRoot;

    const DAY: &str = "likes/dt=2025-11-23";

    async fn put(store: &InMemory, path: &ObjectPath, body: &'static str) {
        store
            .put(path, PutPayload::from_static(body.as_bytes()))
            .await
            .unwrap();
    }

    /// A root whose manifest lists `a` (in place) and `b` (committed, still staged by sink
    /// `w`), beside `old` (in place, not listed: merged away, not yet deleted).
    async fn root() -> (ObjectRoot, Arc<InMemory>) {
        let store = Arc::new(InMemory::new());
        let root = ObjectRoot::new(
            Url::parse("s3://bucket/wh").unwrap(),
            Arc::clone(&store) as Arc<dyn ObjectStore>,
        )
        .unwrap();
        put(&store, &root.path(&format!("{DAY}/a.parquet")), "aa").await;
        put(
            &store,
            &root.path(&format!("_sink/tmp/w/{DAY}/b.parquet")),
            "bbb",
        )
        .await;
        put(&store, &root.path(&format!("{DAY}/old.parquet")), "old").await;
        let mut manifest = Manifest::empty("events");
        manifest.writer = Some("w".into());
        for (name, bytes) in [("a", 2), ("b", 3)] {
            manifest.files.insert(
                format!("{DAY}/{name}.parquet"),
                FileEntry { rows: 1, bytes },
            );
        }
        root.store_manifest(&mut manifest, None).await.unwrap();
        (root, store)
    }

    /// A store over `root` that has read its manifest.
    async fn opened(root: &ObjectRoot) -> SnapshotStore {
        let snapshot = SnapshotStore::new(root.clone());
        snapshot.refresh().await.unwrap();
        snapshot
    }

    /// What `snapshot` lists under `rel`: paths relative to the root and sizes, sorted.
    async fn listing(snapshot: &SnapshotStore, root: &ObjectRoot, rel: &str) -> Vec<(String, u64)> {
        let mut listed: Vec<(String, u64)> = snapshot
            .list(Some(&root.path(rel)))
            .map_ok(|meta| (root.rel(&meta.location).unwrap(), meta.size))
            .try_collect()
            .await
            .unwrap();
        listed.sort();
        listed
    }

    #[tokio::test]
    async fn a_table_lists_what_the_manifest_holds_and_reads_it_wherever_it_is() {
        let (root, store) = root().await;
        let snapshot = opened(&root).await;
        assert_eq!(
            listing(&snapshot, &root, "likes").await,
            [
                (format!("{DAY}/a.parquet"), 2),
                (format!("{DAY}/b.parquet"), 3)
            ]
        );
        let b = root.path(&format!("{DAY}/b.parquet"));
        let read = |path: ObjectPath| {
            let snapshot = &snapshot;
            async move { snapshot.get(&path).await.unwrap().bytes().await.unwrap() }
        };
        assert_eq!(read(b.clone()).await.as_ref(), b"bbb");
        // Another statement reads the manifest again before this one runs: still readable.
        snapshot.refresh().await.unwrap();
        assert_eq!(read(b.clone()).await.as_ref(), b"bbb");
        let ranges = snapshot.get_ranges(&b, &[0..1, 1..3]).await.unwrap();
        assert_eq!(
            [ranges[0].as_ref(), ranges[1].as_ref()],
            [b"b" as &[u8], b"bb"]
        );

        // Copied into place and the staged copy deleted, as the next sink start does.
        let staged = root.path(&format!("_sink/tmp/w/{DAY}/b.parquet"));
        store.copy(&staged, &b).await.unwrap();
        store.delete(&staged).await.unwrap();
        assert_eq!(read(b).await.as_ref(), b"bbb");

        let folders = snapshot
            .list_with_delimiter(Some(&root.path("likes")))
            .await
            .unwrap();
        assert_eq!(folders.common_prefixes, [root.path(DAY)]);
        assert!(folders.objects.is_empty());
    }

    #[tokio::test]
    async fn a_swap_half_carried_out_is_read_from_its_staged_outputs_only() {
        let (root, store) = root().await;
        // Compaction merged a and b into c and d; its inputs are deleted, its outputs staged.
        let staging = "_sink/staging/1-t";
        for (name, body) in [("c", "cc"), ("d", "ddddd")] {
            put(
                &store,
                &root.path(&format!("{staging}/{name}.parquet")),
                body,
            )
            .await;
        }
        store
            .delete(&root.path(&format!("{DAY}/a.parquet")))
            .await
            .unwrap();
        let mut manifest = root.load().await.unwrap().unwrap().0;
        manifest.files.clear();
        for (name, bytes) in [("c", 2), ("d", 5)] {
            manifest.files.insert(
                format!("{DAY}/{name}.parquet"),
                FileEntry { rows: 1, bytes },
            );
        }
        manifest.swap = Some(Swap {
            partition: DAY.into(),
            staging: staging.into(),
            output: "c.parquet".into(),
            inputs: vec!["a.parquet".into(), "b.parquet".into()],
            outputs: vec!["c.parquet".into(), "d.parquet".into()],
        });
        let read = root.load().await.unwrap().unwrap().1;
        assert!(
            root.store_manifest(&mut manifest, Some(&read))
                .await
                .unwrap()
        );

        let snapshot = opened(&root).await;
        assert_eq!(
            listing(&snapshot, &root, DAY).await,
            [
                (format!("{DAY}/c.parquet"), 2),
                (format!("{DAY}/d.parquet"), 5)
            ],
            "the staged outputs under their live names; `old` and the staged `b` left out"
        );
        let d = root.path(&format!("{DAY}/d.parquet"));
        let got = snapshot.get(&d).await.unwrap();
        assert_eq!(
            got.meta.location, d,
            "a redirected read answers for the live path"
        );
        assert_eq!(got.bytes().await.unwrap().as_ref(), b"ddddd");
    }

    #[tokio::test]
    async fn a_listed_file_found_nowhere_fails_the_listing_and_says_to_run_again() {
        let (root, store) = root().await;
        store
            .delete(&root.path(&format!("_sink/tmp/w/{DAY}/b.parquet")))
            .await
            .unwrap();
        let snapshot = opened(&root).await;
        let listed: Result<Vec<_>, _> =
            snapshot.list(Some(&root.path("likes"))).try_collect().await;
        let error = listed.unwrap_err();
        assert!(
            matches!(&error, object_store::Error::NotFound { path, .. } if path.ends_with("b.parquet")),
            "{error}"
        );
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(chain.contains("run the statement again"), "{chain}");
    }

    #[tokio::test]
    async fn paths_outside_the_tables_pass_through_and_writes_are_refused() {
        let (root, _store) = root().await;
        let snapshot = opened(&root).await;
        assert_eq!(
            listing(&snapshot, &root, "_sink/tmp").await,
            [(format!("_sink/tmp/w/{DAY}/b.parquet"), 3)]
        );
        let a = root.path(&format!("{DAY}/a.parquet"));
        let refused = [
            snapshot
                .put(&a, PutPayload::from_static(b"x"))
                .await
                .map(|_| ()),
            snapshot.delete(&a).await,
            snapshot.copy(&a, &root.path("likes/x.parquet")).await,
        ];
        for outcome in refused {
            assert!(
                matches!(outcome, Err(object_store::Error::NotImplemented { .. })),
                "{outcome:?}"
            );
        }
        assert!(
            snapshot.get(&a).await.is_ok(),
            "a refused delete deletes nothing"
        );
    }

    #[tokio::test]
    async fn a_table_listed_before_the_manifest_is_read_is_refused_as_a_bug() {
        let (root, _store) = root().await;
        let unread = SnapshotStore::new(root.clone());
        let listed: Result<Vec<_>, _> = unread.list(Some(&root.path("likes"))).try_collect().await;
        let error = listed.unwrap_err();
        assert!(format!("{error}").contains("bug"), "{error}");
    }

    #[tokio::test]
    async fn a_root_without_a_manifest_holds_nothing() {
        let store = Arc::new(InMemory::new());
        let root = ObjectRoot::new(Url::parse("s3://bucket/wh").unwrap(), store.clone()).unwrap();
        put(&store, &root.path(&format!("{DAY}/a.parquet")), "aa").await;
        let snapshot = opened(&root).await;
        assert_eq!(listing(&snapshot, &root, "likes").await, []);
    }
}
