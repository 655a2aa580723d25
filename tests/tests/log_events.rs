//! The engine's `log` events for background work: a flush and a compaction each say what they
//! wrote and how long it took, and the turn to read-only after a failed sync says why, once.
//! One logger per process, so one test drives every scenario in turn.

use std::sync::{Arc, Mutex};

use zverse::{Db, Durability, Error, Options};
use zverse_tests::sim_io::{Fault, SimIo};

/// Every event logged, as `LEVEL message`.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("zverse") {
            let event = format!("{} {}", record.level(), record.args());
            EVENTS.lock().unwrap().push(event);
        }
    }

    fn flush(&self) {}
}

/// The events logged since the last call.
fn take_events() -> Vec<String> {
    std::mem::take(&mut *EVENTS.lock().unwrap())
}

fn has(events: &[String], level_and_start: &str) -> bool {
    events.iter().any(|event| event.starts_with(level_and_start))
}

fn open(io: &SimIo, path: &str) -> Db {
    let options = Options::default().durability(Durability::Sync);
    Db::open_with_io(path, options, Arc::new(io.clone())).unwrap()
}

#[test]
fn background_work_and_the_turn_to_read_only_are_logged() {
    log::set_logger(&Recorder).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let io = SimIo::new();
    let db = open(&io, "/db");
    let events = take_events();
    assert!(has(&events, "INFO zverse: opened /db: 0 segments"), "{events:?}");

    db.put(b"k1", b"v1").unwrap();
    db.flush().unwrap();
    let events = take_events();
    assert!(has(&events, "INFO zverse: flushed 1 versions into 1 segments ("), "{events:?}");

    db.put(b"k2", b"v2").unwrap();
    db.compact().unwrap();
    let events = take_events();
    assert!(has(&events, "INFO zverse: compacted 2 segments ("), "{events:?}");

    io.inject(Fault::SyncFailure, io.call_count(), true);
    assert!(matches!(db.put(b"k3", b"v3"), Err(Error::ReadOnly(_))));
    assert!(matches!(db.put(b"k4", b"v4"), Err(Error::ReadOnly(_))));
    let events = take_events();
    let read_only: Vec<_> = events.iter().filter(|e| e.contains("turned read-only")).collect();
    assert_eq!(read_only.len(), 1, "said once: {events:?}");
    assert!(read_only[0].starts_with("ERROR zverse: /db turned read-only: "), "{read_only:?}");
}
