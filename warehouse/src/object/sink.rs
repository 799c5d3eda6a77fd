//! The sink's side of an object root: taking the root (recovery and fencing) and one commit
//! (the protocol is in the [module docs](super)).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use object_store::UpdateVersion;

use super::scratch::Scratch;
use super::{ObjectRoot, runtime, token};
use crate::error::{WarehouseError, io};
use crate::failpoint;
use crate::layout::{SINK_DIR, TMP_DIR, is_data_file_name};
use crate::manifest::Manifest;
use crate::recover::Repairs;
use crate::sink::buffer::Taken;
use crate::sink::commit::{Committed, committed, record, write_files};

/// A sink's hold on an object root.
#[derive(Debug)]
pub struct ObjectSink {
    root: ObjectRoot,
    /// Written into the manifest's `writer` when the root was taken.
    token: String,
    runtime: tokio::runtime::Runtime,
    /// Where a commit's files are written before they are put.
    scratch: Scratch,
}

impl ObjectSink {
    /// Takes `root` for the sink of `topic`: creates the manifest when there is none, finishes
    /// what it says is half done, writes this sink's token into it (fencing any sink before)
    /// and deletes what no commit vouches for.
    pub fn open(
        root: ObjectRoot,
        topic: &str,
    ) -> Result<(ObjectSink, Manifest, Repairs), WarehouseError> {
        let runtime = runtime()?;
        let token = token();
        let (manifest, repairs) = runtime.block_on(take(&root, topic, &token))?;
        let scratch = Scratch::new("aperture-sink-")?;
        Ok((
            ObjectSink {
                root,
                token,
                runtime,
                scratch,
            },
            manifest,
            repairs,
        ))
    }

    pub fn root(&self) -> &ObjectRoot {
        &self.root
    }

    /// Commits `taken` with the partitions' next offsets `next`, like
    /// [`crate::sink::commit::commit`] on a local root. After `Err` the caller stops; the next
    /// start finishes or drops the commit.
    pub fn commit(
        &self,
        row_group_size: usize,
        manifest: &mut Manifest,
        taken: Taken,
        next: &BTreeMap<i32, i64>,
    ) -> Result<Committed, WarehouseError> {
        let started = Instant::now();
        let n = manifest.commit + 1;
        let local = |rel: &str| self.scratch.path().join(rel.replace('/', "."));
        let written = write_files(local, &manifest.topic, n, taken.groups, row_group_size)?;
        let staged = |rel: &str| staged_rel(&self.token, rel);
        let skipped = self.runtime.block_on(async {
            // 1. Every file under _sink/tmp/<token>/, where no reader lists.
            for file in &written {
                self.root
                    .upload(&local(&file.rel), &staged(&file.rel))
                    .await?;
                std::fs::remove_file(local(&file.rel)).map_err(io("delete", local(&file.rel)))?;
            }
            failpoint::hit("sink-before-manifest");
            // 2. The manifest, put against the version read: the commit point.
            let mut refused = false;
            let skipped = loop {
                let (mut next_manifest, read) =
                    self.root.load_existing("while the sink held it").await?;
                let ours = next_manifest.writer.as_deref() == Some(self.token.as_str());
                if refused && ours && next_manifest.commit == n && next_manifest.offsets == *next {
                    // The put that was refused had landed (a retry of it after a lost answer
                    // found its own write): the commit stands.
                    *manifest = next_manifest;
                    break taken.skipped.values().sum();
                }
                if !ours {
                    return Err(WarehouseError::Fenced {
                        root: self.root.url().to_string(),
                        token: self.token.clone(),
                        writer: next_manifest.writer.unwrap_or_default(),
                    });
                }
                if next_manifest.commit != manifest.commit
                    || next_manifest.offsets != manifest.offsets
                {
                    return Err(WarehouseError::ManifestMoved {
                        expected: manifest.commit,
                        found: next_manifest.commit,
                    });
                }
                if let Some(swap) = next_manifest.swap.take() {
                    self.root.carry_out(&swap).await?;
                }
                let skipped = record(&mut next_manifest, n, next, &written, &taken.skipped);
                if self
                    .root
                    .store_manifest(&mut next_manifest, Some(&read))
                    .await?
                {
                    *manifest = next_manifest;
                    break skipped;
                }
                refused = true;
                // A compaction changed the file list since the read: read it again.
            };
            failpoint::hit("sink-after-manifest");
            // 3. Into place. A crash in here is finished by the next start.
            for file in &written {
                self.root.copy(&staged(&file.rel), &file.rel).await?;
                self.root.delete(&staged(&file.rel)).await?;
            }
            Ok::<_, WarehouseError>(skipped)
        })?;
        Ok(committed(n, &written, skipped, started))
    }
}

/// Where sink `token` stages the file that goes to `rel`.
pub(crate) fn staged_rel(token: &str, rel: &str) -> String {
    format!("{SINK_DIR}/{TMP_DIR}/{token}/{rel}")
}

async fn take(
    root: &ObjectRoot,
    topic: &str,
    token: &str,
) -> Result<(Manifest, Repairs), WarehouseError> {
    let mut repairs = Repairs::default();
    loop {
        let (mut manifest, read) = match root.load().await? {
            Some((manifest, read)) => (manifest, Some(read)),
            None => {
                // A root with data but no manifest is not ours to clean.
                if let Some(example) = first_data_file(root).await? {
                    return Err(WarehouseError::NoManifest {
                        root: PathBuf::from(root.url().to_string()),
                        example: PathBuf::from(root.display(&example)),
                    });
                }
                (Manifest::empty(topic), None)
            }
        };
        if manifest.topic != topic {
            return Err(WarehouseError::TopicMismatch {
                root: PathBuf::from(root.url().to_string()),
                manifest_topic: manifest.topic,
                topic: topic.to_owned(),
            });
        }
        if let Some(swap) = manifest.swap.take() {
            root.carry_out(&swap).await?;
            repairs.swap_finished = true;
        }
        if !complete_commit(root, &manifest, read.as_ref(), &mut repairs).await? {
            continue;
        }
        manifest.writer = Some(token.to_owned());
        if root.store_manifest(&mut manifest, read.as_ref()).await? {
            delete_strays(root, token, &mut repairs).await?;
            return Ok((manifest, repairs));
        }
        // Another sink or a compaction wrote the manifest meanwhile: from the top.
    }
}

/// Copies the listed files still waiting under the last commit's staging prefix into place.
/// `Ok(false)` when a listed file is in neither place because the manifest moved since it was
/// read (a compaction merged the file away meanwhile): the caller reads it again.
async fn complete_commit(
    root: &ObjectRoot,
    manifest: &Manifest,
    read: Option<&UpdateVersion>,
    repairs: &mut Repairs,
) -> Result<bool, WarehouseError> {
    let present: BTreeSet<String> = root
        .list("")
        .await?
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    for rel in manifest.files.keys().filter(|rel| !present.contains(*rel)) {
        let staged = manifest.writer.as_deref().map(|w| staged_rel(w, rel));
        let Some(staged) = staged.filter(|s| present.contains(s)) else {
            let now = root.load().await?.map(|(_, version)| version);
            if now.as_ref() != read {
                return Ok(false);
            }
            return Err(WarehouseError::MissingFile {
                path: PathBuf::from(root.display(rel)),
            });
        };
        root.copy(&staged, rel).await?;
        repairs.completed.push(PathBuf::from(root.display(rel)));
    }
    Ok(true)
}

/// After the root is taken: deletes other sinks' staged files (their commits either are in the
/// manifest and in place, or never will be), then data files the manifest does not list (a
/// fenced sink's late copy of a file compaction had already merged away; with the staged
/// copies gone, no such copy can follow). The folders are listed before the manifest is read,
/// so a file a compaction swaps in meanwhile is kept; and if the manifest then names another
/// writer, this sink is fenced already and deletes nothing more, since that writer's staged
/// files are live.
async fn delete_strays(
    root: &ObjectRoot,
    token: &str,
    repairs: &mut Repairs,
) -> Result<(), WarehouseError> {
    let tmp = format!("{SINK_DIR}/{TMP_DIR}/");
    let own = format!("{tmp}{token}/");
    let staged = root.list(&tmp).await?;
    fenced_unless_writer(root, token).await?;
    for (rel, _) in staged {
        if !rel.starts_with(&own) {
            root.delete(&rel).await?;
            repairs.deleted.push(PathBuf::from(root.display(&rel)));
        }
    }
    let objects = root.list("").await?;
    let manifest = fenced_unless_writer(root, token).await?;
    for (rel, _) in objects {
        let unlisted_data = !rel.starts_with(&format!("{SINK_DIR}/"))
            && rel.rsplit('/').next().is_some_and(is_data_file_name)
            && !manifest.files.contains_key(&rel);
        if unlisted_data {
            tracing::warn!(object = %root.display(&rel), "deleting a data file no commit lists");
            root.delete(&rel).await?;
            repairs.deleted.push(PathBuf::from(root.display(&rel)));
        }
    }
    Ok(())
}

/// The manifest, if `token` is still its writer; [`WarehouseError::Fenced`] if not.
async fn fenced_unless_writer(root: &ObjectRoot, token: &str) -> Result<Manifest, WarehouseError> {
    let (manifest, _) = root.load_existing("while a sink took the root").await?;
    match manifest.writer.as_deref() {
        Some(writer) if writer == token => Ok(manifest),
        writer => Err(WarehouseError::Fenced {
            root: root.url().to_string(),
            token: token.to_owned(),
            writer: writer.unwrap_or_default().to_owned(),
        }),
    }
}

async fn first_data_file(root: &ObjectRoot) -> Result<Option<String>, WarehouseError> {
    Ok(root
        .list("")
        .await?
        .into_iter()
        .map(|(rel, _)| rel)
        .find(|rel| {
            !rel.starts_with(&format!("{SINK_DIR}/"))
                && rel.rsplit('/').next().is_some_and(is_data_file_name)
        }))
}

#[cfg(test)]
mod tests {
    use aperture_schema::Envelope;
    use aperture_schema::event::{Event, Target};
    use aperture_schema::warehouse::Table;

    use super::*;
    use crate::sink::buffer::Buffer;

    fn follows(ids: &[&str]) -> Taken {
        let mut buffer = Buffer::default();
        for id in ids {
            let event = Envelope {
                v: 1,
                event_id: (*id).into(),
                actor_id: 1,
                ts: 0,
                event: Event::Follow(Target { target_id: 2 }),
            };
            assert!(buffer.push(Table::Follows, 0, event, 100));
        }
        buffer.take()
    }

    fn objects(root: &ObjectRoot, runtime: &tokio::runtime::Runtime) -> Vec<String> {
        runtime
            .block_on(root.list(""))
            .unwrap()
            .into_iter()
            .map(|(rel, _)| rel)
            .collect()
    }

    /// Two sinks on one root (a restart while the old process still runs): the one that took
    /// the root last writes it, the first is refused at its next commit, and nothing the first
    /// staged survives the second's start.
    #[test]
    fn a_sink_that_opened_the_root_first_is_fenced_by_the_next() {
        let root = crate::object::memory("s3://bucket/wh");
        let runtime = runtime().unwrap();
        let (first, mut first_manifest, _) = ObjectSink::open(root.clone(), "events").unwrap();
        let next = BTreeMap::from([(0, 2)]);
        let c = first
            .commit(1000, &mut first_manifest, follows(&["a", "b"]), &next)
            .unwrap();
        assert_eq!((c.commit, c.rows), (1, 2));
        assert_eq!(
            objects(&root, &runtime),
            [
                "_sink/manifest.json",
                "follows/dt=1970-01-01/part-000000000001.parquet"
            ]
        );

        let (second, mut second_manifest, _) = ObjectSink::open(root.clone(), "events").unwrap();
        assert_eq!(second_manifest.commit, 1);
        let err = first
            .commit(
                1000,
                &mut first_manifest,
                follows(&["c"]),
                &BTreeMap::from([(0, 3)]),
            )
            .unwrap_err();
        assert!(matches!(err, WarehouseError::Fenced { .. }), "{err}");

        let c = second
            .commit(
                1000,
                &mut second_manifest,
                follows(&["c"]),
                &BTreeMap::from([(0, 3)]),
            )
            .unwrap();
        assert_eq!(c.commit, 2);
        // The first sink's staged file for its refused commit is still there until a start
        // cleans up; the second sink's own staging is empty after its commit.
        let (third, third_manifest, repairs) = ObjectSink::open(root.clone(), "events").unwrap();
        assert_eq!(third_manifest.commit, 2);
        assert_eq!(repairs.deleted.len(), 1, "{:?}", repairs.deleted);
        assert_eq!(
            objects(&root, &runtime),
            [
                "_sink/manifest.json",
                "follows/dt=1970-01-01/part-000000000001.parquet",
                "follows/dt=1970-01-01/part-000000000002.parquet"
            ]
        );
        drop(third);
    }

    /// A crash between the manifest and the copies: the next start copies the committed files
    /// into place from the staging prefix of the sink that committed them.
    #[test]
    fn a_commit_whose_copies_did_not_happen_is_completed_at_the_next_start() {
        let root = crate::object::memory("s3://bucket/wh");
        let runtime = runtime().unwrap();
        let (sink, mut manifest, _) = ObjectSink::open(root.clone(), "events").unwrap();
        sink.commit(
            1000,
            &mut manifest,
            follows(&["a"]),
            &BTreeMap::from([(0, 1)]),
        )
        .unwrap();
        // Undo the last step by hand: the file back under the sink's staging prefix.
        let rel = "follows/dt=1970-01-01/part-000000000001.parquet";
        let staged = staged_rel(&sink.token, rel);
        runtime.block_on(async {
            root.copy(rel, &staged).await.unwrap();
            root.delete(rel).await.unwrap();
        });
        let (_, reopened, repairs) = ObjectSink::open(root.clone(), "events").unwrap();
        assert_eq!(reopened.commit, 1);
        assert_eq!(repairs.completed.len(), 1);
        assert_eq!(objects(&root, &runtime), ["_sink/manifest.json", rel]);
    }
}
