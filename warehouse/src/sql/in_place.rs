//! Local roots read in place: the store SQL sessions read `file://` paths through.
//!
//! object_store's [`LocalFileSystem`] hands every read to tokio's blocking pool: a ranged get
//! makes two trips there (one to open the file, one to read it), `get_ranges` one. The Parquet
//! reader asks each file for a few small ranges (the column chunks, or the pages of them left
//! after pruning), and on a warehouse's warm files each trip costs more than the read it
//! carries. [`InPlace`] reads ranges on the thread that asks for them,
//! with `pread(2)`; whole-file gets, `head`, writes and listings by delimiter go to
//! [`LocalFileSystem`] unchanged. On the rollup queries of `benches/warehouse.rs` this took
//! about a tenth off the time spent reading.
//!
//! Listing is the same story at planning time. Each statement lists every table it reads
//! (see [`super::plan`]), and `LocalFileSystem` walks a folder on the blocking pool, a trip
//! per thousand files. [`InPlace`] walks it on the calling thread, with the same `walkdir`
//! settings and the same description of each file. The six listings `creator_daily` needs
//! took 0.37 ms through `LocalFileSystem` on a one-day warehouse and 0.08 ms in place (on a
//! week, 0.82 and 0.36 ms).
//!
//! The price: a read or a walk that misses the page cache holds a runtime worker for as long
//! as the disk takes, where it would have waited on a blocking thread. Those workers are the
//! ones that decode the pages read, and planning waits for its listings, so a query waits for
//! the disk either way.

use std::fs::{File, Metadata};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use walkdir::WalkDir;

/// Name of this store in its errors.
const STORE: &str = "InPlace";

/// A [`LocalFileSystem`] whose ranged reads happen on the calling thread (see the module
/// documentation).
#[derive(Debug, Default)]
pub struct InPlace {
    inner: LocalFileSystem,
}

impl InPlace {
    /// A store over the whole local file system, as `file://` URLs name it.
    pub fn new() -> InPlace {
        InPlace::default()
    }

    /// Opens `location` for reading, with its metadata.
    fn open(&self, location: &ObjectPath) -> object_store::Result<(File, PathBuf, Metadata)> {
        let path = self.inner.path_to_filesystem(location)?;
        let opened = File::open(&path).and_then(|file| {
            let metadata = file.metadata()?;
            Ok((file, metadata))
        });
        match opened {
            Ok((_, metadata)) if metadata.is_dir() => Err(object_store::Error::NotFound {
                source: format!("{} is a folder", path.display()).into(),
                path: path.to_string_lossy().into_owned(),
            }),
            Ok((file, metadata)) => Ok((file, path, metadata)),
            Err(source) => Err(io_error(source, &path)),
        }
    }
}

/// The description of a file, as [`LocalFileSystem`] gives it (the same entity tag, so a
/// precondition means the same through either store).
fn object_meta(location: &ObjectPath, metadata: &Metadata) -> ObjectMeta {
    let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
    let micros = modified
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    ObjectMeta {
        location: location.clone(),
        last_modified: modified.into(),
        size: metadata.len(),
        e_tag: Some(format!(
            "{:x}-{micros:x}-{:x}",
            metadata.ino(),
            metadata.len()
        )),
        version: None,
    }
}

/// What [`LocalFileSystem::list`] gives for one entry of a walk: a file's description, or
/// nothing for a folder, for an entry gone since its folder was read (a broken link too), and
/// for a name `names` does not serve (its own temporary files, named `…#<digits>`).
fn listed(
    names: &LocalFileSystem,
    entry: walkdir::Result<walkdir::DirEntry>,
) -> object_store::Result<Option<ObjectMeta>> {
    let walk_error = |source: walkdir::Error| match source.io_error().map(|e| e.kind()) {
        Some(std::io::ErrorKind::NotFound) => Ok(None),
        _ => Err(object_store::Error::Generic {
            store: STORE,
            source: Box::new(source),
        }),
    };
    let entry = match entry {
        Ok(entry) => entry,
        Err(source) => return walk_error(source),
    };
    if !entry.file_type().is_file() {
        return Ok(None);
    }
    let location = ObjectPath::from_absolute_path(entry.path()).map_err(|source| {
        object_store::Error::Generic {
            store: STORE,
            source: Box::new(source),
        }
    })?;
    if names.path_to_filesystem(&location).is_err() {
        return Ok(None);
    }
    match entry.metadata() {
        Ok(metadata) => Ok(Some(object_meta(&location, &metadata))),
        Err(source) => walk_error(source),
    }
}

/// Reads `range` of `file`, failing if the file ends before it does.
fn read_at(file: &File, path: &std::path::Path, range: Range<u64>) -> object_store::Result<Bytes> {
    let len = usize::try_from(range.end.saturating_sub(range.start)).map_err(|_| {
        object_store::Error::Generic {
            store: STORE,
            source: format!("range {range:?} of {} is too long", path.display()).into(),
        }
    })?;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, range.start)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::UnexpectedEof => object_store::Error::Generic {
                store: STORE,
                source: format!("range {range:?} is past the end of {}", path.display()).into(),
            },
            _ => io_error(source, path),
        })?;
    Ok(buf.into())
}

fn io_error(source: std::io::Error, path: &std::path::Path) -> object_store::Error {
    match source.kind() {
        std::io::ErrorKind::NotFound => object_store::Error::NotFound {
            path: path.to_string_lossy().into_owned(),
            source: source.into(),
        },
        _ => object_store::Error::Generic {
            store: STORE,
            source: format!("could not read {}: {source}", path.display()).into(),
        },
    }
}

impl std::fmt::Display for InPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InPlace({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for InPlace {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    /// A ranged get is read in place; a whole-file get or a `head` goes to
    /// [`LocalFileSystem`], which hands the open file to the caller instead of reading it.
    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let Some(range) = options.range.as_ref().filter(|_| !options.head) else {
            return self.inner.get_opts(location, options).await;
        };
        let (file, path, metadata) = self.open(location)?;
        let meta = object_meta(location, &metadata);
        options.check_preconditions(&meta)?;
        let range = range
            .as_range(meta.size)
            .map_err(|source| object_store::Error::Generic {
                store: STORE,
                source: Box::new(source),
            })?;
        let bytes = read_at(&file, &path, range.clone())?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes: Attributes::default(),
        })
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let (file, path, _) = self.open(location)?;
        ranges
            .iter()
            .map(|range| read_at(&file, &path, range.clone()))
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    /// Walks the folder on the calling thread as the stream is polled: every file under it,
    /// following links, as [`LocalFileSystem::list`] lists them. A folder that does not
    /// exist (a table the sink has not written yet) lists nothing. Without a prefix, or with
    /// one `LocalFileSystem` would not name a file by, the listing is its own.
    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let Some(folder) = prefix.and_then(|p| self.inner.path_to_filesystem(p).ok()) else {
            return self.inner.list(prefix);
        };
        let names = self.inner.clone();
        let walk = WalkDir::new(folder).min_depth(1).follow_links(true);
        futures::stream::iter(
            walk.into_iter()
                .filter_map(move |entry| listed(&names, entry).transpose()),
        )
        .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::{GetRange, ObjectStoreExt};

    use super::*;

    /// A file of 1,000 known bytes, and its path as both stores name it.
    fn file() -> (tempfile::TempDir, ObjectPath) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("data.bin");
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, bytes).expect("the file is written");
        let location = ObjectPath::from_filesystem_path(&path).expect("a local path");
        (dir, location)
    }

    fn ranged(range: GetRange) -> GetOptions {
        GetOptions {
            range: Some(range),
            ..GetOptions::default()
        }
    }

    #[tokio::test]
    async fn ranged_reads_answer_what_the_local_file_system_answers() {
        let (_dir, location) = file();
        let (ours, theirs) = (InPlace::new(), LocalFileSystem::new());
        for range in [
            GetRange::Bounded(0..10),
            GetRange::Bounded(990..1000),
            GetRange::Bounded(500..2000),
            GetRange::Offset(900),
            GetRange::Suffix(8),
        ] {
            let a = ours.get_opts(&location, ranged(range.clone())).await;
            let b = theirs.get_opts(&location, ranged(range.clone())).await;
            let (a, b) = (a.expect("ours reads"), b.expect("theirs reads"));
            assert_eq!(a.meta, b.meta, "{range:?}");
            assert_eq!(a.range, b.range, "{range:?}");
            assert_eq!(
                a.bytes().await.expect("ours"),
                b.bytes().await.expect("theirs"),
                "{range:?}"
            );
        }
        let ranges = [0..1, 10..400, 400..400, 999..1000];
        assert_eq!(
            ours.get_ranges(&location, &ranges).await.expect("ours"),
            theirs.get_ranges(&location, &ranges).await.expect("theirs")
        );
        assert_eq!(
            ours.get_range(&location, 3..7).await.expect("ours"),
            theirs.get_range(&location, 3..7).await.expect("theirs")
        );
    }

    #[tokio::test]
    async fn reads_past_the_end_or_of_missing_files_fail_as_they_do_through_the_local_file_system()
    {
        let (dir, location) = file();
        let (ours, theirs) = (InPlace::new(), LocalFileSystem::new());
        let past_end = ours.get_ranges(&location, &[0..10, 990..1001]).await;
        assert!(
            matches!(&past_end, Err(e) if e.to_string().contains("past the end")),
            "{past_end:?}"
        );
        assert!(
            theirs
                .get_ranges(&location, &[0..10, 990..1001])
                .await
                .is_err()
        );
        let start_past_end = ours.get_opts(&location, ranged(GetRange::Bounded(1000..1010)));
        assert!(start_past_end.await.is_err());

        let missing =
            ObjectPath::from_absolute_path(dir.path().join("gone.bin")).expect("a local path");
        let got = ours
            .get_opts(&missing, ranged(GetRange::Bounded(0..1)))
            .await;
        assert!(
            matches!(got, Err(object_store::Error::NotFound { .. })),
            "{got:?}"
        );
        for store in [&ours as &dyn ObjectStore, &theirs] {
            let got = store.get_ranges(&missing, &[0..1, 1..2]).await;
            assert!(
                matches!(got, Err(object_store::Error::NotFound { .. })),
                "{store}: {got:?}"
            );
        }
        let folder = ObjectPath::from_filesystem_path(dir.path()).expect("a local path");
        for store in [&ours as &dyn ObjectStore, &theirs] {
            let got = store
                .get_opts(&folder, ranged(GetRange::Bounded(0..1)))
                .await;
            assert!(
                matches!(got, Err(object_store::Error::NotFound { .. })),
                "{store}: {got:?}"
            );
        }
        // `LocalFileSystem::get_ranges` fails on a folder with a read error; ours says
        // `NotFound`, as both stores' ranged gets do.
        let got = ours.get_ranges(&folder, &[0..1, 1..2]).await;
        assert!(
            matches!(got, Err(object_store::Error::NotFound { .. })),
            "{got:?}"
        );
        assert!(theirs.get_ranges(&folder, &[0..1, 1..2]).await.is_err());
    }

    #[tokio::test]
    async fn preconditions_hold_on_the_same_entity_tags() {
        let (_dir, location) = file();
        let tag = LocalFileSystem::new()
            .head(&location)
            .await
            .expect("head")
            .e_tag
            .expect("an entity tag");
        let store = InPlace::new();
        let with_tag = |tag: &str| GetOptions {
            if_match: Some(tag.to_owned()),
            ..ranged(GetRange::Bounded(0..4))
        };
        let ok = store.get_opts(&location, with_tag(&tag)).await;
        assert!(ok.is_ok(), "{ok:?}");
        let stale = store.get_opts(&location, with_tag("0-0-0")).await;
        assert!(
            matches!(stale, Err(object_store::Error::Precondition { .. })),
            "{stale:?}"
        );
    }

    #[tokio::test]
    async fn whole_file_gets_pass_through() {
        let (_dir, location) = file();
        let whole = InPlace::new().get(&location).await.expect("the whole file");
        assert!(matches!(whole.payload, GetResultPayload::File(..)));
        assert_eq!(whole.bytes().await.expect("bytes").len(), 1000);
    }

    /// What `store` lists under `folder`, in name order (neither store promises an order).
    async fn listing(store: &dyn ObjectStore, folder: &std::path::Path) -> Vec<ObjectMeta> {
        let prefix = ObjectPath::from_absolute_path(folder).expect("a local path");
        let mut listed: Vec<ObjectMeta> = store
            .list(Some(&prefix))
            .map(|meta| meta.expect("listed"))
            .collect()
            .await;
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        listed
    }

    #[tokio::test]
    async fn listings_are_the_local_file_systems() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path().join("table");
        let nested = root.join("dt=2025-11-23").join("more");
        std::fs::create_dir_all(&nested).expect("folders");
        std::fs::create_dir(root.join("empty")).expect("a folder");
        for (path, len) in [
            (root.join("a.parquet"), 10),
            (root.join("dt=2025-11-23").join("b.parquet"), 20),
            (nested.join("c.parquet"), 30),
            // object_store's temporary files, which it does not list; and a name that only
            // looks like one.
            (root.join("dt=2025-11-23").join("b.parquet#1"), 5),
            (root.join("d.parquet#tmp"), 40),
        ] {
            std::fs::write(path, vec![7u8; len]).expect("a file");
        }
        std::os::unix::fs::symlink(root.join("a.parquet"), root.join("link.parquet"))
            .expect("a link");
        std::os::unix::fs::symlink(root.join("gone"), root.join("broken.parquet"))
            .expect("a broken link");

        let ours = listing(&InPlace::new(), &root).await;
        let theirs = listing(&LocalFileSystem::new(), &root).await;
        assert_eq!(ours, theirs);
        let names: Vec<&str> = ours
            .iter()
            .filter_map(|meta| meta.location.filename())
            .collect();
        assert_eq!(
            names,
            [
                "a.parquet",
                "d.parquet#tmp",
                "b.parquet",
                "c.parquet",
                "link.parquet"
            ]
        );

        let missing = dir.path().join("not yet written");
        assert!(listing(&InPlace::new(), &missing).await.is_empty());
        assert!(listing(&LocalFileSystem::new(), &missing).await.is_empty());
    }
}
