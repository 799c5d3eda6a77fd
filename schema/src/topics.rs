//! Topic names, the partition key and the partitioner.
//!
//! Events are keyed by `actor_id` as a decimal string, so one user's actions stay in order on one
//! partition. Producers use librdkafka's `murmur2_random` partitioner, which for a non-empty key
//! is the Java client's default (`murmur2(key) & 0x7fffffff % partitions`); [`partition_for`] is
//! the same function, so any component (and any Kafka client in another language) can tell
//! which partition holds a user's events.

/// Default name of the events topic (the wire version is part of the name: a `v2` would get a
/// topic of its own).
pub const EVENTS_TOPIC: &str = "aperture.events.v1";
/// Default name of the dead-letter topic where jobs put events they cannot apply.
pub const DEAD_LETTER_TOPIC: &str = "aperture.events.dlq.v1";

/// The librdkafka partitioner that matches [`partition_for`].
pub const PARTITIONER: &str = "murmur2_random";

/// The Kafka key of an event: its `actor_id` in decimal.
pub fn partition_key(actor_id: u64) -> String {
    actor_id.to_string()
}

/// The partition of `partitions` that holds the events of `actor_id`.
pub fn partition_for(actor_id: u64, partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(partition_key(actor_id).as_bytes()) & 0x7fff_ffff) % partitions
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), as an unsigned 32-bit value.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    // The Java code mixes the length as an `int`; keys longer than 4 GiB are not a thing here.
    let mut h = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the Kafka Java client's own test of `Utils.murmur2`.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(
                murmur2(data) as i32,
                expected,
                "{}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for actor in 1..1000u64 {
            let p = partition_for(actor, 8);
            assert!(p < 8);
            assert_eq!(p, partition_for(actor, 8));
        }
    }

    #[test]
    fn partition_key_is_decimal_actor_id() {
        assert_eq!(partition_key(42), "42");
    }
}
