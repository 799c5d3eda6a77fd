//! Where things live under the warehouse root, and the `YYYY-MM-DD` form of a day.
//!
//! ```text
//! <root>/<table>/dt=YYYY-MM-DD/part-<commit>.parquet        rows of one sink commit
//! <root>/<table>/dt=YYYY-MM-DD/compact-<seq>.parquet        rows of many, merged by compaction
//! <root>/_sink/manifest.json                                the commit record: files and offsets
//! <root>/_sink/sink.lock, commit.lock, compact.lock         who may write (see crate::fs)
//! <root>/_sink/tmp/<table>.dt=YYYY-MM-DD.part-<commit>.parquet   a sink file before its commit
//! <root>/_sink/staging/<seq>/                               a partition folder being compacted
//! ```
//!
//! `<commit>` and `<seq>` are zero-padded to 12 digits, so names sort in commit order. Every
//! file being written lives under `_sink/`, outside the table folders: Hive-style readers
//! (DataFusion, pyarrow, Spark, duckdb) list only the table folders, and would skip `_sink`
//! anyway for its leading `_`. A data file appears in a table folder only by an atomic rename
//! of a complete, fsynced file.

use std::path::{Path, PathBuf};

use aperture_schema::warehouse::Table;

/// The sink's own folder under the root.
pub const SINK_DIR: &str = "_sink";
/// The manifest's name in [`SINK_DIR`].
pub const MANIFEST: &str = "manifest.json";
/// Held by the running sink for its whole life: one sink per root.
pub const SINK_LOCK: &str = "sink.lock";
/// Held while the manifest or the table folders change: a sink commit, a compaction swap,
/// recovery.
pub const COMMIT_LOCK: &str = "commit.lock";
/// Held by a running compaction: one at a time per root.
pub const COMPACT_LOCK: &str = "compact.lock";
/// Folder of sink files written but not yet committed, in [`SINK_DIR`].
pub const TMP_DIR: &str = "tmp";
/// Folder of compaction's partition folders being built, in [`SINK_DIR`].
pub const STAGING_DIR: &str = "staging";
/// Prefix of a file being replaced atomically (the manifest), in [`SINK_DIR`].
pub const TMP_PREFIX: &str = ".tmp-";

const PART_PREFIX: &str = "part-";
const COMPACT_PREFIX: &str = "compact-";
const PARQUET: &str = ".parquet";
const DT_PREFIX: &str = "dt=";

/// `<root>/_sink`.
pub fn sink_dir(root: &Path) -> PathBuf {
    root.join(SINK_DIR)
}

/// `<root>/_sink/tmp`.
pub fn tmp_dir(root: &Path) -> PathBuf {
    sink_dir(root).join(TMP_DIR)
}

/// `<root>/_sink/staging`.
pub fn staging_dir(root: &Path) -> PathBuf {
    sink_dir(root).join(STAGING_DIR)
}

/// The folder of one table.
pub fn table_dir(root: &Path, table: Table) -> PathBuf {
    root.join(table.name())
}

/// The folder name of one day's partition: `dt=YYYY-MM-DD`.
pub fn partition_name(day: i32) -> String {
    format!("{DT_PREFIX}{}", date_string(day))
}

/// The day a partition folder name stands for.
pub fn parse_partition_name(name: &str) -> Option<i32> {
    parse_date(name.strip_prefix(DT_PREFIX)?)
}

/// The folder of one table's day.
pub fn partition_dir(root: &Path, table: Table, day: i32) -> PathBuf {
    table_dir(root, table).join(partition_name(day))
}

/// `<table>/dt=YYYY-MM-DD`, the manifest's form of a partition folder.
pub fn partition_rel(table: Table, day: i32) -> String {
    format!("{}/{}", table.name(), partition_name(day))
}

/// The name of the file a sink commit writes in a partition.
pub fn part_name(commit: u64) -> String {
    format!("{PART_PREFIX}{commit:012}{PARQUET}")
}

/// The name of a file compaction writes.
pub fn compact_name(seq: u64) -> String {
    format!("{COMPACT_PREFIX}{seq:012}{PARQUET}")
}

/// Whether a name is one the warehouse writes into a partition folder (a sink part or a
/// compacted file). Recovery deletes such files when the manifest does not list them, and
/// never touches any other name.
pub fn is_data_file_name(name: &str) -> bool {
    let digits = name
        .strip_prefix(PART_PREFIX)
        .or_else(|| name.strip_prefix(COMPACT_PREFIX))
        .and_then(|rest| rest.strip_suffix(PARQUET));
    digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Where a sink file waits for its commit: `_sink/tmp/<table>.dt=….part-<commit>.parquet`
/// for the final path `<table>/dt=…/part-<commit>.parquet` (relative to the root).
pub fn tmp_path_for(root: &Path, rel: &str) -> PathBuf {
    tmp_dir(root).join(rel.replace('/', "."))
}

/// The manifest's name for a path under the root: relative, `/`-separated.
pub fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `YYYY-MM-DD` of a day since 1970-01-01 (proleptic Gregorian, UTC).
pub fn date_string(day: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date; `None` for anything else.
pub fn parse_date(s: &str) -> Option<i32> {
    let mut parts = s.splitn(3, '-');
    let y: i64 = parts.next().filter(|p| p.len() == 4)?.parse().ok()?;
    let m: u32 = parts.next().filter(|p| p.len() == 2)?.parse().ok()?;
    let d: u32 = parts.next().filter(|p| p.len() == 2)?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d)).ok()
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both in range by construction: day 1..=31, month 1..=12.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Howard Hinnant's `days_from_civil`, the inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_schema::warehouse::{MAX_TS, day_of};

    #[test]
    fn days_and_dates_agree_with_the_calendar() {
        assert_eq!(date_string(0), "1970-01-01");
        assert_eq!(date_string(20_415), "2025-11-23");
        assert_eq!(date_string(day_of(951_782_400_000).unwrap()), "2000-02-29");
        assert_eq!(date_string(day_of(MAX_TS).unwrap()), "9999-12-31");
        for day in (0..2_932_896).step_by(97) {
            assert_eq!(parse_date(&date_string(day)), Some(day), "day {day}");
        }
    }

    #[test]
    fn malformed_dates_do_not_parse() {
        for bad in [
            "2025-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "24-01-01",
            "2024-01-01x",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
    }

    #[test]
    fn names_sort_in_commit_order_and_only_ours_count_as_data_files() {
        assert_eq!(part_name(42), "part-000000000042.parquet");
        assert_eq!(compact_name(7), "compact-000000000007.parquet");
        assert!(part_name(9) < part_name(10));
        assert!(is_data_file_name(&part_name(42)));
        assert!(is_data_file_name(&compact_name(42)));
        for other in [
            "part-.parquet",
            "part-12a.parquet",
            "notes.parquet",
            "part-1.csv",
        ] {
            assert!(!is_data_file_name(other), "{other}");
        }
        assert_eq!(partition_name(20_415), "dt=2025-11-23");
        assert_eq!(parse_partition_name("dt=2025-11-23"), Some(20_415));
        assert_eq!(parse_partition_name("2025-11-23"), None);
        assert_eq!(
            partition_rel(Table::NegativeFeedback, 20_415),
            "negative_feedback/dt=2025-11-23"
        );
        let root = Path::new("/w");
        assert_eq!(
            tmp_path_for(root, "likes/dt=2025-11-23/part-000000000001.parquet"),
            Path::new("/w/_sink/tmp/likes.dt=2025-11-23.part-000000000001.parquet")
        );
        assert_eq!(
            relative(
                root,
                &partition_dir(root, Table::Likes, 20_415).join(part_name(1))
            ),
            "likes/dt=2025-11-23/part-000000000001.parquet"
        );
    }
}
