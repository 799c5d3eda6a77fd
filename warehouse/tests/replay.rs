//! The warehouse read back as events gives exactly the events written, in event-time order.

use aperture_ingest::generate::{Spec, generate};
use aperture_warehouse::replay;
use aperture_warehouse::sink::write_events;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warehouse_replays_as_exactly_the_events_written_in_event_time_order() {
    let mut events = generate(&Spec {
        seed: 5,
        users: 300,
        days: 2.0,
        ..Spec::default()
    })
    .events;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("warehouse");
    let (first, second) = events.split_at(events.len() / 2);
    write_events(&root, "replay", first.to_vec(), 64).unwrap();
    // A client's retry of an event already written is one event when read back.
    let mut again = second.to_vec();
    again.push(first[0].clone());
    write_events(&root, "replay", again, 64).unwrap();

    let back = replay::events(&root).await.unwrap();
    events.sort_by(|a, b| (a.ts, &a.event_id).cmp(&(b.ts, &b.event_id)));
    assert_eq!(back.len(), events.len());
    for (got, want) in back.iter().zip(&events) {
        assert_eq!(
            got, want,
            "event {} changed on its way through",
            want.event_id
        );
    }
    let kinds: std::collections::BTreeSet<_> = back.iter().map(|e| e.kind()).collect();
    assert!(
        kinds.len() >= 20,
        "only {} event types were replayed",
        kinds.len()
    );
}
