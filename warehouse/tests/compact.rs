//! Compaction of a warehouse the sink wrote from the real broker: it merges small files into
//! sorted ones without changing a row, leaves out second copies of an event, a second run
//! changes nothing, a crash at any step of the swap leaves readers counting each row once, and
//! it runs safely beside a live sink.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use aperture_schema::Config;
use aperture_schema::warehouse::Table;
use aperture_warehouse::compact::{Filter, Report, Settings, compact};
use aperture_warehouse::files::{PAGE_ROWS, read_file};
use aperture_warehouse::layout::staging_dir;
use aperture_warehouse::manifest::Manifest;
use aperture_warehouse::rows::sort;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;
use support::*;

/// Not a test: the body of the child processes the crash tests start (see `support`). Run
/// without them it does nothing.
#[test]
#[ignore = "runs only as the child process of a crash test"]
fn child_process() {
    child_main();
}

/// A root the sink filled with many small files (a commit every 100 ms or 256 KiB).
fn small_files_root(name: &str, dir: &Path, seed: u64) -> (Config, Vec<aperture_schema::Envelope>) {
    let mut config = test_config(name, 3, dir);
    config.warehouse.roll_size = 32 << 10;
    create_topics(&config);
    let events = workload(seed, 200, 1.5);
    produce(&config, &events);
    sink_until_caught_up(&config);
    (config, events)
}

fn settings(config: &Config) -> Settings {
    Settings::from_config(config)
}

/// Every file in place with its inode, for telling whether anything was rewritten.
fn snapshot(root: &Path) -> BTreeMap<String, u64> {
    Table::ALL
        .into_iter()
        .flat_map(|t| visible_files(root, t))
        .map(|p| {
            let inode = std::fs::metadata(&p).unwrap().ino();
            (aperture_warehouse::layout::relative(root, &p), inode)
        })
        .collect()
}

fn files_per_partition(root: &Path) -> BTreeMap<String, usize> {
    let manifest = Manifest::load(root).unwrap().unwrap();
    manifest
        .partitions()
        .into_iter()
        .map(|p| {
            let n = manifest.files_in(&p).len();
            (p, n)
        })
        .collect()
}

#[test]
fn compaction_merges_small_files_into_sorted_ones_without_changing_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = small_files_root("wh-compact", dir.path(), 31);
    let root = &config.warehouse.root;
    let before = files_per_partition(root);
    assert!(
        before.values().any(|&n| n >= 3),
        "the sink wrote several files per partition: {before:?}"
    );
    assert!(before.len() >= 12, "two days of ten tables: {before:?}");

    let manifest = Manifest::load(root).unwrap().unwrap();
    let merged: Vec<&String> = before
        .iter()
        .filter(|(_, n)| **n >= 2)
        .map(|(p, _)| p)
        .collect();
    let merged_rows: u64 = merged
        .iter()
        .flat_map(|p| manifest.files_in(p).into_values())
        .map(|e| e.rows)
        .sum();
    let report = compact(&settings(&config), &Filter::default()).unwrap();
    assert_eq!(report.partitions, merged.len());
    assert_eq!(
        report.inputs,
        merged.iter().map(|p| before[*p]).sum::<usize>()
    );
    assert_eq!(report.outputs, merged.len());
    assert_eq!(report.rows, merged_rows);
    let after = files_per_partition(root);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(after.values().all(|&n| n == 1), "{after:?}");
    assert_exactly_once(root, &events, "after compaction");
    assert_root_consistent(root);

    let mut pages_filled = false;
    for table in Table::ALL {
        for path in visible_files(root, table) {
            let batches = read_file(&path).unwrap();
            let batch = arrow::compute::concat_batches(&table.schema(), &batches).unwrap();
            assert_eq!(
                sort(table, &batch).unwrap(),
                batch,
                "{} is sorted by {:?}",
                path.display(),
                table.sort_key()
            );
            let options = ReadOptionsBuilder::new().with_page_index().build();
            let reader = SerializedFileReader::new_with_options(
                std::fs::File::open(&path).unwrap(),
                options,
            )
            .unwrap();
            let declared = reader.metadata().row_group(0).sorting_columns();
            assert_eq!(
                declared.map(Vec::len),
                Some(table.sort_key().len()),
                "{} declares its order",
                path.display()
            );
            let largest = largest_page(reader.metadata());
            assert!(
                largest <= PAGE_ROWS,
                "{}: a page of {largest} rows",
                path.display()
            );
            pages_filled |= largest == PAGE_ROWS;
        }
    }
    assert!(
        pages_filled,
        "some file fills a page, so the page limit was put to the test"
    );
    assert!(
        aperture_warehouse::fs::entries(&staging_dir(root))
            .unwrap()
            .is_empty()
    );
}

/// A producer's retries put events on the topic twice: right after the first copy (mostly in
/// the same sink commit, where the sink drops the repeat) and after the sink has committed the
/// first copy (another commit, another file, which compaction merges away). Once compacted,
/// every event is one row, and every copy sent is accounted for by one or the other.
#[test]
fn events_sent_twice_are_one_row_each_once_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config("wh-dupes", 3, dir.path());
    config.warehouse.roll_size = 32 << 10;
    create_topics(&config);
    let root = &config.warehouse.root;
    let events = workload(37, 150, 1.0);
    let mut retried: Vec<aperture_schema::Envelope> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        retried.push(e.clone());
        if i % 10 == 0 {
            retried.push(e.clone());
        }
    }
    produce(&config, &retried);
    let first = sink_until_caught_up(&config);
    let late: Vec<aperture_schema::Envelope> = events.iter().step_by(7).cloned().collect();
    produce(&config, &late);
    let second = sink_until_caught_up(&config);

    let report = compact(&settings(&config), &Filter::default()).unwrap();
    assert_exactly_once(root, &events, "after compaction");
    assert_root_consistent(root);
    let sent_twice = (retried.len() - events.len() + late.len()) as u64;
    assert_eq!(
        first.skipped + second.skipped + report.duplicates,
        sent_twice,
        "every second copy is dropped by the sink or left out by compaction"
    );
    assert!(
        first.skipped > 0,
        "copies next to each other are dropped within a commit"
    );
    assert!(
        report.duplicates >= late.len() as u64,
        "a copy committed after its original is left out by compaction: {report:?}"
    );
    let again = compact(&settings(&config), &Filter::default()).unwrap();
    assert_eq!(again, Report::default());
}

/// With a small target and a small fan-in, compaction takes several passes and rolls its
/// outputs; after one run no partition has two small files, so a second run has nothing to do
/// and rewrites nothing.
#[test]
fn compacting_twice_changes_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = small_files_root("wh-compact-twice", dir.path(), 32);
    let root = &config.warehouse.root;
    let settings = Settings {
        target_size: 20 << 10,
        fan_in: 3,
        ..settings(&config)
    };
    let first = compact(&settings, &Filter::default()).unwrap();
    assert!(first.partitions > 0 && first.outputs > 0, "{first:?}");
    let manifest = Manifest::load(root).unwrap().unwrap();
    for partition in manifest.partitions() {
        let small = manifest
            .files_in(&partition)
            .values()
            .filter(|e| e.bytes < settings.target_size)
            .count();
        assert!(small <= 1, "{partition} keeps {small} small files");
    }
    assert_exactly_once(root, &events, "after the first run");

    let files = snapshot(root);
    let manifest_bytes = std::fs::read(Manifest::path(root)).unwrap();
    let second = compact(&settings, &Filter::default()).unwrap();
    assert_eq!(second, Report::default());
    assert_eq!(snapshot(root), files, "no file was rewritten");
    assert_eq!(
        std::fs::read(Manifest::path(root)).unwrap(),
        manifest_bytes,
        "the manifest was not touched"
    );
    assert_root_consistent(root);
}

#[test]
fn compaction_can_be_limited_to_one_table_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let (config, events) = small_files_root("wh-compact-filter", dir.path(), 33);
    let root = &config.warehouse.root;
    let before = files_per_partition(root);
    let filter = Filter {
        table: Some(Table::Views),
        day: Some(20_415),
    };
    let report = compact(&settings(&config), &filter).unwrap();
    assert_eq!(report.partitions, 1);
    let after = files_per_partition(root);
    for (partition, n) in &before {
        let expected = if partition == "views/dt=2025-11-23" {
            1
        } else {
            *n
        };
        assert_eq!(after[partition], expected, "{partition}");
    }
    assert_exactly_once(root, &events, "after compacting one partition");
}

/// A compaction killed right after committing its swap, or right after the exchange, leaves
/// readers of the folders counting every row exactly once; whoever takes the root next (a
/// compaction, or a sink starting) finishes the swap.
#[test]
fn a_compaction_crashed_mid_swap_leaves_old_or_new_files_never_both() {
    for (point, finisher) in [
        ("compact-after-manifest", "compaction"),
        ("compact-after-swap", "sink"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (config, events) = small_files_root("wh-compact-crash", dir.path(), 34);
        let root = &config.warehouse.root;
        let before = files_per_partition(root);

        let mut child = spawn_child(&config, "compact", Some(&format!("{point}@2")));
        let status = wait_exit(&mut child, Duration::from_secs(120));
        assert!(
            !status.success(),
            "{point}: compaction aborted at the crash point"
        );
        let manifest = Manifest::load(root).unwrap().unwrap();
        let swap = manifest.swap.clone().expect("the swap is recorded");
        assert_exactly_once(root, &events, &format!("{point}, before recovery"));
        let live = aperture_warehouse::fs::entries(&root.join(&swap.partition)).unwrap();
        match point {
            "compact-after-manifest" => assert!(
                !live.contains(&swap.output),
                "{point}: readers still see the old files"
            ),
            _ => assert!(
                live.contains(&swap.output),
                "{point}: readers see the new file"
            ),
        }

        match finisher {
            "compaction" => {
                compact(&settings(&config), &Filter::default()).unwrap();
                assert!(files_per_partition(root).values().all(|&n| n == 1));
            }
            _ => {
                sink_until_caught_up(&config);
                let after = files_per_partition(root);
                assert!(
                    after.values().sum::<usize>() < before.values().sum::<usize>(),
                    "{point}: the finished swap stays finished"
                );
            }
        }
        assert_exactly_once(root, &events, &format!("{point}, after recovery"));
        assert_root_consistent(root);
        let staging = aperture_warehouse::fs::entries(&staging_dir(root)).unwrap();
        if finisher == "compaction" {
            assert!(staging.is_empty(), "{point}: staging left: {staging:?}");
        }
    }
}

/// A sink that died between its manifest and its renames leaves files the manifest lists but
/// the folder does not hold yet (a live sink does the same for a moment at every commit):
/// compaction leaves those partitions for a later run instead of failing on a missing file,
/// compacts the rest, and merges them once the sink's next start has moved the files in.
#[test]
fn compaction_leaves_files_a_sink_has_not_placed_yet_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let (config, mut events) = small_files_root("wh-compact-unplaced", dir.path(), 36);
    let root = &config.warehouse.root;
    let more = workload(37, 100, 1.5);
    produce(&config, &more);
    events.extend(more);
    let mut child = spawn_child(&config, "sink", Some("sink-after-manifest@1"));
    let status = wait_exit(&mut child, Duration::from_secs(120));
    assert!(!status.success(), "the sink aborted at the crash point");
    let unplaced: Vec<String> = Manifest::load(root)
        .unwrap()
        .unwrap()
        .files
        .into_keys()
        .filter(|rel| !root.join(rel).exists())
        .collect();
    assert!(
        !unplaced.is_empty(),
        "the last commit's files wait in _sink/tmp"
    );

    let report = compact(&settings(&config), &Filter::default()).unwrap();
    assert!(
        report.inputs > 0,
        "the partitions with every file in place are compacted"
    );
    let files = files_per_partition(root);
    for rel in &unplaced {
        let partition = rel.rsplit_once('/').unwrap().0;
        assert!(
            files[partition] > 1,
            "{partition} waits for its file {rel} to be in place"
        );
    }
    for (table, ids) in visible_ids(root) {
        let distinct: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "{table}: a row twice beside unplaced files"
        );
    }

    sink_until_caught_up(&config);
    compact(&settings(&config), &Filter::default()).unwrap();
    assert!(
        files_per_partition(root).values().all(|&n| n == 1),
        "once in place, the files are merged"
    );
    assert_exactly_once(root, &events, "after the sink moved its files in");
    assert_root_consistent(root);
}

/// Compactions running over and over while a sink commits new files into the same partitions:
/// the commit lock keeps each swap from dropping a file committed meanwhile.
#[test]
fn compaction_beside_a_running_sink_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config("wh-compact-live", 3, dir.path());
    config.warehouse.roll_size = 32 << 10;
    create_topics(&config);
    let events = workload(35, 300, 0.5);
    let (first, rest) = events.split_at(events.len() / 3);
    produce(&config, first);
    let sink = RunningSink::start(&config);
    let producer = {
        let config = config.clone();
        let rest = rest.to_vec();
        std::thread::spawn(move || {
            for chunk in rest.chunks(rest.len().div_ceil(20)) {
                produce(&config, chunk);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let settings = settings(&config);
    let mut runs = 0;
    let mut merged = 0;
    while !producer.is_finished() || runs < 3 {
        let report = compact(&settings, &Filter::default()).unwrap();
        merged += report.inputs;
        runs += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    producer.join().unwrap();
    wait_committed(&config, Duration::from_secs(120));
    compact(&settings, &Filter::default()).unwrap();
    sink.stop();
    assert!(
        merged > 0,
        "the compactions merged files while the sink ran"
    );
    assert_exactly_once(&config.warehouse.root, &events, "after live compactions");
    assert_root_consistent(&config.warehouse.root);
}

/// Rows in the largest data page of any column of a file, from its offset index.
fn largest_page(metadata: &ParquetMetaData) -> usize {
    let index = metadata
        .offset_index()
        .expect("the file has an offset index");
    let mut largest = 0;
    for (group, columns) in index.iter().enumerate() {
        let rows = metadata.row_group(group).num_rows();
        for column in columns {
            let starts: Vec<i64> = column
                .page_locations()
                .iter()
                .map(|page| page.first_row_index)
                .chain([rows])
                .collect();
            for pair in starts.windows(2) {
                largest = largest.max(usize::try_from(pair[1] - pair[0]).unwrap());
            }
        }
    }
    largest
}
