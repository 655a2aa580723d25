//! `Db::checkpoint`: a copy taken under concurrent writers reads exactly like the source as of
//! the checkpoint's version; a crash at any I/O call of a checkpoint leaves a destination that
//! opens with exactly the checkpointed data or is refused, and a source with all its data.

use std::collections::BTreeMap;
#[cfg(unix)]
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(unix)]
use zverse::io::StdIo;
use zverse::{Db, Durability, Error, Options, Version};
use zverse_tests::backend;
use zverse_tests::sim_io::{CrashVariant, SimIo};

/// Every acknowledged write: key, then version, then the value (`None` for a delete).
type Model = BTreeMap<Vec<u8>, BTreeMap<Version, Option<Vec<u8>>>>;

const WRITERS: usize = 4;

/// Small memtables and an eager compaction, so that rotations, flushes and compactions run
/// while the checkpoint copies.
fn busy_options() -> Options {
    Options::default()
        .durability(Durability::None)
        .memtable_bytes_max(16 * 1024)
        .compaction_trigger_segments(3)
}

/// Writer `writer`'s `step`-th write: a put, or every seventh a delete, of one of 40 keys.
fn write_one(db: &Db, writer: usize, step: usize) -> (Vec<u8>, Version, Option<Vec<u8>>) {
    let key = format!("w{writer}-key{:02}", step % 40).into_bytes();
    if step % 7 == 6 {
        let version = db.delete(&key).expect("delete");
        (key, version, None)
    } else {
        let value = format!("value {step} of writer {writer} {}", "x".repeat(step % 50));
        let version = db.put(&key, value.as_bytes()).expect("put");
        (key, version, Some(value.into_bytes()))
    }
}

fn model_until(model: &Model, version: Version) -> Model {
    let mut until = Model::new();
    for (key, versions) in model {
        let kept: BTreeMap<_, _> =
            versions.range(..=version).map(|(v, value)| (*v, value.clone())).collect();
        if !kept.is_empty() {
            until.insert(key.clone(), kept);
        }
    }
    until
}

/// Checks every get, as-of read, history and the full `changes` of `db` against `model`.
fn assert_reads_equal(db: &Db, model: &Model, context: &str) {
    for (key, versions) in model {
        let latest = versions.values().next_back().cloned().flatten();
        assert_eq!(
            db.get(key).unwrap().as_deref().map(<[u8]>::to_vec),
            latest,
            "get {key:?} ({context})"
        );
        for (&version, value) in versions {
            let read = db.get_at(key, version).unwrap().as_deref().map(<[u8]>::to_vec);
            assert_eq!(&read, value, "get_at {key:?} {version} ({context})");
            let before = Version::new(version.get() - 1);
            let expected = versions.range(..=before).next_back().and_then(|(_, v)| v.clone());
            let read = db.get_at(key, before).unwrap().as_deref().map(<[u8]>::to_vec);
            assert_eq!(read, expected, "get_at {key:?} {before} ({context})");
        }
        let history: Vec<_> = db
            .history(key)
            .unwrap()
            .map(|item| {
                let (version, value) = item.unwrap();
                (version, value.as_deref().map(<[u8]>::to_vec))
            })
            .collect();
        let expected: Vec<_> =
            versions.iter().rev().map(|(v, value)| (*v, value.clone())).collect();
        assert_eq!(history, expected, "history {key:?} ({context})");
    }
    let mut changes = Model::new();
    for change in db.changes(.., ..).unwrap() {
        let change = change.unwrap();
        let value = change.value.as_deref().map(<[u8]>::to_vec);
        changes.entry(change.key.to_vec()).or_default().insert(change.version, value);
    }
    assert_eq!(&changes, model, "changes ({context})");
}

#[test]
fn checkpoint_under_four_writers_equals_the_source_at_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let dest = dir.path().join("checkpoint");
    let db = backend::open(&source, busy_options()).unwrap();
    let started = AtomicBool::new(false);
    let stopping = AtomicBool::new(false);
    let (version, writes) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (db, started, stopping) = (&db, &started, &stopping);
                scope.spawn(move || {
                    let mut writes = Vec::new();
                    let mut step = 0;
                    while !stopping.load(Ordering::Relaxed) || step < 3_000 {
                        writes.push(write_one(db, writer, step));
                        step += 1;
                        if step == 500 {
                            started.store(true, Ordering::Relaxed);
                        }
                    }
                    writes
                })
            })
            .collect();
        while !started.load(Ordering::Relaxed) {
            std::thread::yield_now();
        }
        let version = db.checkpoint(&dest).unwrap();
        stopping.store(true, Ordering::Relaxed);
        let acknowledged: Vec<_> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        (version, acknowledged)
    });
    let mut model = Model::new();
    for (key, version, value) in writes {
        model.entry(key).or_default().insert(version, value);
    }
    let after = model.values().flat_map(BTreeMap::keys).filter(|v| **v > version).count();
    assert!(after > 0, "writers kept writing after the checkpoint");
    let checkpointed = model_until(&model, version);
    assert!(!checkpointed.is_empty());

    let copy = backend::open(&dest, busy_options().create_if_missing(false)).unwrap();
    assert_reads_equal(&copy, &checkpointed, "copy");
    // The copy is a database of its own: writing to it leaves the source alone.
    copy.put(b"only in the copy", b"1").unwrap();
    copy.close().unwrap();
    assert_eq!(db.get(b"only in the copy").unwrap(), None);
    db.close().unwrap();
    drop(db);
    let reopened = backend::open(&source, busy_options()).unwrap();
    assert_reads_equal(&reopened, &model, "source");
    let copy = backend::open(&dest, busy_options()).unwrap();
    assert_eq!(copy.get(b"only in the copy").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn checkpoint_refuses_an_existing_destination() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("source"), Options::default()).unwrap();
    db.put(b"k", b"v").unwrap();
    let dest = dir.path().join("exists");
    std::fs::create_dir(&dest).unwrap();
    let error = db.checkpoint(&dest).unwrap_err();
    assert!(matches!(error, Error::DestinationExists { .. }), "{error}");
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "nothing written to it");
    let error = Db::open(dir.path().join("source"), Options::default().read_only(true))
        .unwrap()
        .checkpoint(dir.path().join("new"))
        .unwrap_err();
    assert!(matches!(error, Error::OpenedReadOnly), "{error}");
}

const SOURCE: &str = "/db";
const DEST: &str = "/backup/db";

fn sim_options() -> Options {
    Options::default().durability(Durability::Sync).memtable_bytes_max(4 * 1024)
}

/// A source on `io` with segments, sealed logs and an active memtable; returns its model.
fn sim_source(io: &SimIo) -> (Db, Model) {
    let db = Db::open_with_io(SOURCE, sim_options(), Arc::new(io.clone())).unwrap();
    let mut model = Model::new();
    for step in 0..120 {
        let (key, version, value) = write_one(&db, step % 3, step);
        model.entry(key).or_default().insert(version, value);
        if step == 60 {
            db.flush().unwrap();
        }
    }
    (db, model)
}

fn open_sim(io: &SimIo, path: &str) -> zverse::Result<Db> {
    Db::open_with_io(path, sim_options().create_if_missing(false), Arc::new(io.clone()))
}

#[test]
fn crash_at_every_io_call_of_a_checkpoint() {
    let variants = [
        CrashVariant::LoseUnsynced,
        CrashVariant::KeepUnsynced,
        CrashVariant::RandomDirOps { seed: 1 },
        CrashVariant::RandomDirOps { seed: 2 },
    ];
    let mut offset = 0;
    let mut opened = 0;
    loop {
        let io = SimIo::new();
        let (db, model) = sim_source(&io);
        let crash_call = io.call_count() + offset;
        io.crash_at(crash_call);
        let result = db.checkpoint(DEST);
        if !io.has_crashed() {
            let version = result.unwrap();
            assert_eq!(model_until(&model, version), model);
            drop(db);
            assert!(offset > 10, "the checkpoint made I/O calls ({offset})");
            break;
        }
        drop(db);
        for variant in variants {
            let disk = io.after_crash(variant);
            let context = format!("crash at call {crash_call} (+{offset}), {variant:?}");
            let source = open_sim(&disk, SOURCE).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert_reads_equal(&source, &model, &format!("source, {context}"));
            drop(source);
            if let Ok(copy) = open_sim(&disk, DEST) {
                assert_reads_equal(&copy, &model, &format!("copy, {context}"));
                opened += 1;
            }
        }
        offset += 1;
    }
    println!("checkpoint crash sweep: {offset} I/O calls, {opened} crashed copies opened");
    let io = SimIo::new();
    let (db, model) = sim_source(&io);
    db.checkpoint(DEST).unwrap();
    assert!(matches!(db.checkpoint(DEST), Err(Error::DestinationExists { .. })));
    assert_reads_equal(&open_sim(&io, DEST).unwrap(), &model, "copy");
}

/// `StdIo` on which every hard link fails as across file systems (`EXDEV`).
#[cfg(unix)]
#[derive(Debug)]
struct CrossDevice;

#[cfg(unix)]
impl zverse::io::Io for CrossDevice {
    fn name(&self) -> &'static str {
        "cross-device"
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        StdIo.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        StdIo.list_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> std::io::Result<Option<zverse::io::IoLock>> {
        StdIo.try_lock(path)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn zverse::io::IoFile>> {
        StdIo.create_new(path)
    }
    fn open_read_write(&self, path: &Path) -> std::io::Result<Box<dyn zverse::io::IoFile>> {
        StdIo.open_read_write(path)
    }
    fn open_read(&self, path: &Path) -> std::io::Result<Box<dyn zverse::io::IoFile>> {
        StdIo.open_read(path)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        StdIo.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        StdIo.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        StdIo.sync_dir(dir)
    }
    fn hard_link(&self, _from: &Path, _to: &Path) -> std::io::Result<()> {
        Err(std::io::ErrorKind::CrossesDevices.into())
    }
}

/// The link count of every segment in `dir`.
#[cfg(unix)]
fn segment_link_counts(dir: &Path) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    let entries = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path());
    let segments = entries.filter(|path| path.extension().is_some_and(|e| e == "seg"));
    segments.map(|path| std::fs::metadata(path).unwrap().nlink()).collect()
}

/// Segments are hard links on one file system, and copies where links fail with `EXDEV`.
#[cfg(unix)]
#[test]
fn checkpoint_links_segments_and_copies_them_across_file_systems() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    for (io, name, links) in [
        (Arc::new(StdIo) as Arc<dyn zverse::io::Io>, "linked", 2),
        (Arc::new(CrossDevice), "copied", 1),
    ] {
        let source = dir.path().join(format!("source-{name}"));
        let db = Db::open_with_io(&source, Options::default(), io).unwrap();
        for step in 0..50 {
            let (key, version, value) = write_one(&db, 0, step);
            model.entry(key).or_default().insert(version, value);
            if step % 20 == 19 {
                db.flush().unwrap();
            }
        }
        let dest = dir.path().join(name);
        db.checkpoint(&dest).unwrap();
        // Two flushed segments, and a third when the flush of the memtable the checkpoint's
        // rotation sealed lands before the capture (a race the test does not control).
        let counts = segment_link_counts(&dest);
        assert!(
            counts.len() >= 2 && counts.iter().all(|&count| count == links),
            "{name}: {counts:?}"
        );
        assert_reads_equal(&Db::open(&dest, Options::default()).unwrap(), &model, name);
        model.clear();
    }
}
