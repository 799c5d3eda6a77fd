//! Events waiting for the next commit, grouped by the file they will land in, and the rule for
//! when to commit.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use aperture_schema::Envelope;
use aperture_schema::warehouse::Table;

/// Rough in-memory cost of one buffered event beyond its size on the topic: the envelope, its
/// strings' headers and the map entry.
const ROW_OVERHEAD: u64 = 128;

/// Skip reason of an event whose id an event earlier in the same commit had. Duplicates that
/// land in different commits are removed when compaction merges the partition's files.
pub const DUPLICATE: &str = "duplicate_event_id";

/// What the next commit will write, and the records it will count as consumed.
#[derive(Debug, Default)]
pub struct Buffer {
    /// Events per (table, UTC day): one file each at commit.
    groups: BTreeMap<(Table, i32), Vec<Envelope>>,
    /// The ids of the events in `groups`: a second event with an id already held is not a row.
    ids: HashSet<String>,
    /// Estimated bytes held.
    bytes: u64,
    /// Records consumed since the last commit that are not rows, per reason.
    skipped: BTreeMap<&'static str, u64>,
    /// When the first record since the last commit was consumed.
    since: Option<Instant>,
}

impl Buffer {
    /// Adds a valid event of `table` for UTC day `day`; `size` is its size on the topic.
    /// An event whose id the buffer already holds (a client's retry, a producer's redelivery)
    /// is not taken, and the caller counts it as skipped for [`DUPLICATE`]: the id is the
    /// idempotency key, so the first event with it is the one kept. Returns whether the event
    /// was taken as a row.
    pub fn push(&mut self, table: Table, day: i32, event: Envelope, size: usize) -> bool {
        if self.ids.contains(event.event_id.as_str()) {
            return false;
        }
        self.touch();
        self.bytes += size as u64 + ROW_OVERHEAD;
        self.ids.insert(event.event_id.clone());
        self.groups.entry((table, day)).or_default().push(event);
        true
    }

    /// Counts a record that is not a valid event; its offset is committed like any other.
    pub fn skip(&mut self, reason: &'static str) {
        self.touch();
        *self.skipped.entry(reason).or_default() += 1;
    }

    fn touch(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    /// Whether nothing was consumed since the last commit.
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether to commit now: the buffer holds `roll_size` bytes, or its oldest record has
    /// waited `roll_interval`.
    pub fn should_roll(&self, roll_size: u64, roll_interval: Duration) -> bool {
        self.since
            .is_some_and(|since| self.bytes >= roll_size || since.elapsed() >= roll_interval)
    }

    /// Empties the buffer, handing over its groups and skip counts.
    pub fn take(&mut self) -> Taken {
        let taken = Taken {
            groups: std::mem::take(&mut self.groups),
            skipped: std::mem::take(&mut self.skipped),
        };
        *self = Buffer::default();
        taken
    }
}

/// The content of a buffer at commit time.
#[derive(Debug, Default)]
pub struct Taken {
    pub groups: BTreeMap<(Table, i32), Vec<Envelope>>,
    pub skipped: BTreeMap<&'static str, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_schema::event::{Event, Target};

    fn event() -> Envelope {
        Envelope {
            v: 1,
            event_id: "e".into(),
            actor_id: 1,
            ts: 0,
            event: Event::Follow(Target { target_id: 2 }),
        }
    }

    #[test]
    fn rolls_on_size_and_counts_skips_as_consumed() {
        let mut b = Buffer::default();
        assert!(b.is_empty());
        assert!(!b.should_roll(1, Duration::ZERO));
        b.skip("json");
        assert!(!b.is_empty(), "a skipped record must be committed too");
        assert!(b.should_roll(u64::MAX, Duration::ZERO));
        b.push(Table::Follows, 0, event(), 100);
        assert!(b.should_roll(228, Duration::from_secs(3600)));
        assert!(!b.should_roll(229, Duration::from_secs(3600)));
        let taken = b.take();
        assert_eq!(taken.groups[&(Table::Follows, 0)].len(), 1);
        assert_eq!(taken.skipped["json"], 1);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn a_second_event_with_a_held_id_is_skipped_as_a_duplicate_and_the_first_kept() {
        let mut b = Buffer::default();
        assert!(b.push(Table::Follows, 0, event(), 100));
        let mut retry = event();
        retry.ts = 5;
        assert!(!b.push(Table::Follows, 0, retry, 100));
        b.skip(DUPLICATE);
        let mut other = event();
        other.event_id = "f".into();
        assert!(b.push(Table::Follows, 0, other, 100));
        let taken = b.take();
        let kept = &taken.groups[&(Table::Follows, 0)];
        assert_eq!(kept.len(), 2);
        assert_eq!((kept[0].event_id.as_str(), kept[0].ts), ("e", 0));
        assert_eq!(taken.skipped[DUPLICATE], 1);
        let mut again = Buffer::default();
        assert!(
            again.push(Table::Follows, 0, event(), 100),
            "a new commit starts afresh"
        );
    }
}
