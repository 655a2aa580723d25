//! Safe by default (issue 11): what the engine refuses, what it records, and how it reads
//! without write access. One scenario per test; each names the failure it guards against.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use zverse::io::{Io, IoFile, IoLock, StdIo};
use zverse::{Db, Durability, Error, Options, Retention, Version};
use zverse_tests::backend;
use zverse_tests::sim_io::{CrashVariant, Fault, SimIo};

fn options() -> Options {
    Options::default().durability(Durability::Sync)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    names(dir).into_iter().filter(|n| n.ends_with(suffix)).map(|n| dir.join(n)).collect()
}

fn expect_corruption<T>(result: zverse::Result<T>) -> (PathBuf, String) {
    match result {
        Err(Error::Corruption { file, what, .. }) => (file, what),
        Err(other) => panic!("expected Error::Corruption, got {other}"),
        Ok(_) => panic!("expected Error::Corruption, got Ok"),
    }
}

fn now() -> Version {
    Version::from_system_time(SystemTime::now())
}

// ---- Item 2: the live logs are recorded; a missing one is corruption.

/// Before: deleting the newest log dropped its acknowledged writes without a word.
#[test]
fn deleting_the_newest_log_is_corruption_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"v1").unwrap();
    db.flush().unwrap();
    db.put(b"k", b"v2").unwrap();
    db.close().unwrap();
    drop(db);
    let logs = with_suffix(dir.path(), ".log");
    assert_eq!(logs.len(), 1, "{logs:?}");
    fs::remove_file(&logs[0]).unwrap();
    let (file, what) = expect_corruption(backend::open(dir.path(), options()));
    assert_eq!(file, logs[0], "{what}");
    assert!(what.contains("missing"), "{what}");
    let (file, _) = expect_corruption(backend::open(dir.path(), options().read_only(true)));
    assert_eq!(file, logs[0], "a read-only open refuses it too");
}

/// Before: a newest log emptied to nothing was taken for a crash while it was created, and
/// its acknowledged writes were dropped without a word.
#[test]
fn an_emptied_newest_log_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    drop(db);
    let log = with_suffix(dir.path(), ".log").remove(0);
    fs::write(&log, b"").unwrap();
    assert_eq!(expect_corruption(backend::open(dir.path(), options())).0, log);
}

/// Before: a renamed log was replayed under its new name, or not at all, and `check` said ok.
#[test]
fn a_log_removed_while_open_is_found_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.check().unwrap();
    let log = with_suffix(dir.path(), ".log").remove(0);
    fs::rename(&log, dir.path().join("elsewhere")).unwrap();
    let (file, what) = expect_corruption(db.check());
    assert_eq!(file, log, "{what}");
}

/// Before: deleting an older log made reads answer the value before an acknowledged newer
/// one. An older log exists while a flush that failed after its rotation is retried; the
/// simulated disk makes one (no space for the segment).
#[test]
fn deleting_an_older_log_is_corruption_naming_it() {
    let dir = Path::new("/db");
    let io = SimIo::new();
    // Logs without a zero fill, whose writes the count below would have to include.
    let options = || options().log_preallocation_bytes(0);
    let open = |io: &SimIo| Db::open_with_io(dir, options(), Arc::new(io.clone()));
    let db = open(&io).unwrap();
    db.put(b"k", b"old").unwrap();
    // The rotation's calls: seal, sync, create, header, sync_dir, then the manifest that
    // records the new log (6 calls); the segment's creation is the first after them.
    io.inject(Fault::NoSpace, io.call_count() + 11, true);
    assert!(db.flush().is_err());
    drop(db);
    let io = io.after_crash(CrashVariant::KeepUnsynced);
    let db = open(&io).unwrap();
    db.put(b"k", b"new").unwrap();
    db.close().unwrap();
    drop(db);
    let logs: Vec<PathBuf> =
        io.file_paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "log")).collect();
    assert_eq!(logs.len(), 2, "an older log and the newest: {logs:?}");
    let disk = io.after_crash(CrashVariant::KeepUnsynced);
    assert!(disk.replace_file(&logs[0], b""));
    let db = open(&disk);
    // Emptied: it no longer ends with its seal.
    assert_eq!(expect_corruption(db).0, logs[0]);
}

// ---- Item 3: file numbers never wrap and never come from a foreign name.

/// Before: this empty file wrapped the next file number to 0 (a panic in debug builds), and
/// the next open deleted the acknowledged writes that followed.
#[test]
fn a_foreign_file_numbered_u64_max_is_never_used_nor_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"before", b"1").unwrap();
    db.close().unwrap();
    drop(db);
    let foreign = dir.path().join(format!("{}.seg", u64::MAX));
    fs::write(&foreign, b"").unwrap();
    for round in 0..3 {
        let db = backend::open(dir.path(), options()).unwrap();
        db.put(format!("round {round}").as_bytes(), b"v").unwrap();
        db.flush().unwrap();
        db.close().unwrap();
    }
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
    for round in 0..3 {
        assert!(db.get(format!("round {round}").as_bytes()).unwrap().is_some(), "{round}");
    }
    db.check().unwrap();
    assert_eq!(fs::read(&foreign).unwrap(), b"", "the foreign file is left alone");
    let segments = with_suffix(dir.path(), ".seg");
    assert_eq!(segments.len(), 4, "three flushes and the foreign file: {segments:?}");
}

/// A rotation that crashed between creating its log and recording it leaves a log numbered
/// below the manifest's reserved bound: the engine's own, deleted at the next open. The same
/// name at or above the bound is someone else's and is left alone.
#[test]
fn an_unrecorded_log_is_deleted_only_below_the_reserved_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    drop(db);
    let manifest = fs::read(dir.path().join("MANIFEST")).unwrap();
    let file_number_next = u64::from_le_bytes(manifest[16..24].try_into().unwrap());
    let log = with_suffix(dir.path(), ".log").remove(0);
    let ours = dir.path().join(format!("{:020}.log", file_number_next - 1));
    let theirs = dir.path().join(format!("{file_number_next:020}.log"));
    fs::copy(&log, &ours).unwrap();
    fs::copy(&log, &theirs).unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    assert!(!ours.exists(), "a leftover of a crashed rotation is removed");
    assert!(theirs.exists(), "a file the engine did not number is kept");
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(db.stats().log_count, 1);
}

// ---- Item 4: versions in the future are bounded.

/// Before: `commit_at(u64::MAX)` was accepted and blocked every later write, also after a
/// reopen; a year-2100 version stamped every later write 2100.
#[test]
fn commit_at_beyond_now_plus_the_allowed_skew_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let year_2100 = Version::from_system_time(
        SystemTime::UNIX_EPOCH + Duration::from_secs(130 * 365 * 24 * 3600),
    );
    let two_hours = Version::new(now().get() + 2 * 3600 * 1_000_000);
    for version in [Version::MAX, Version::new(u64::MAX - 1), year_2100, two_hours] {
        let mut batch = db.batch();
        batch.put(b"k", b"future");
        match batch.commit_at(version) {
            Err(Error::VersionTooFarAhead { version: refused, version_max }) => {
                assert_eq!(refused, version);
                assert!(version_max < version && version_max > now(), "{version_max}");
            }
            other => panic!("{version}: expected VersionTooFarAhead, got {other:?}"),
        }
    }
    assert_eq!(db.get(b"k").unwrap(), None, "nothing was written");
    let later = db.put(b"k", b"now").unwrap();
    assert!(later <= now(), "later writes keep wall-clock versions: {later}");
    let mut batch = db.batch();
    batch.put(b"k", b"soon");
    let soon = Version::new(now().get() + 10 * 60 * 1_000_000);
    assert_eq!(batch.commit_at(soon).unwrap(), soon, "ten minutes ahead is within the hour");
    drop(db);
    let strict = backend::open(dir.path(), options().version_ahead_max(Duration::ZERO)).unwrap();
    let mut batch = strict.batch();
    batch.put(b"k", b"x");
    let result = batch.commit_at(Version::new(soon.get() + 60 * 1_000_000));
    assert!(matches!(result, Err(Error::VersionTooFarAhead { .. })), "{result:?}");
}

// ---- Item 5: reads below the retention horizon are refused, not answered "not found".

/// Before: after compaction dropped `v1`, `get_at(v1)` answered `None`, as if the key had
/// never existed.
#[test]
fn a_read_below_the_retention_horizon_is_refused_and_the_horizon_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = || options().retention(Retention::Versions(1));
    let db = backend::open(dir.path(), options()).unwrap();
    let v1 = db.put(b"k", b"one").unwrap();
    let other = db.put(b"other", b"kept").unwrap();
    let v2 = db.put(b"k", b"two").unwrap();
    assert_eq!(db.horizon(), Version::ZERO, "nothing dropped yet");
    db.compact().unwrap();
    // v1 answered reads up to the next version of `k`: the horizon is exactly v2.
    assert_eq!(db.horizon(), v2);
    assert_eq!(db.stats().horizon, v2);
    match db.get_at(b"k", v1) {
        Err(Error::BelowHorizon { version, horizon }) => assert_eq!((version, horizon), (v1, v2)),
        other => panic!("expected BelowHorizon, got {other:?}"),
    }
    // Below the horizon a point read that finds a retained version is still exact (no
    // version of `other` was dropped, and no dropped version of any key had an older one
    // kept): it is answered, not refused.
    assert_eq!(db.get_at(b"other", other).unwrap().as_deref(), Some(&b"kept"[..]));
    assert!(matches!(db.range_at(.., v1), Err(Error::BelowHorizon { .. })));
    assert!(matches!(db.changes(.., v1..), Err(Error::BelowHorizon { .. })));
    assert_eq!(db.get_at(b"k", v2).unwrap().as_deref(), Some(&b"two"[..]), "at the horizon");
    assert_eq!(db.get_at(b"other", v2).unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(db.changes(.., v2..).unwrap().count(), 1, "a window from the horizon");
    assert_eq!(db.changes(.., ..).unwrap().count(), 2, "no lower bound: what is retained");
    db.close().unwrap();
    drop(db);
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.horizon(), v2, "persisted in the manifest");
    assert!(matches!(db.get_at(b"k", v1), Err(Error::BelowHorizon { .. })));
}

/// The reads issue 16 added (`prefix_at`, `first_at`, `last_at`, reversed ranges,
/// `history_range`) go through the same horizon check as `range_at` and `changes`: refused
/// below the horizon, answered at and above it, on a `Db` and on a `Snapshot`.
#[test]
fn every_read_as_of_a_version_is_refused_below_the_horizon_and_answered_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options().retention(Retention::Versions(1))).unwrap();
    let v1 = db.put(b"k:1", b"one").unwrap();
    db.put(b"k:2", b"kept").unwrap();
    let v2 = db.put(b"k:1", b"two").unwrap();
    db.compact().unwrap();
    assert_eq!(db.horizon(), v2);
    let below = |result: zverse::Result<()>, what: &str| match result {
        Err(Error::BelowHorizon { horizon, .. }) => assert_eq!(horizon, v2, "{what}"),
        other => panic!("{what}: expected BelowHorizon, got {other:?}"),
    };
    let snapshot = db.snapshot();
    for (name, at) in [("db", None), ("snapshot", Some(&snapshot))] {
        let what = |read: &str| format!("{name}.{read} below the horizon");
        let prefix_at = |version| match at {
            None => db.prefix_at(b"k:", version),
            Some(s) => s.prefix_at(b"k:", version),
        };
        let first_at = |version| match at {
            None => db.first_at(version),
            Some(s) => s.first_at(version),
        };
        let last_at = |version| match at {
            None => db.last_at(version),
            Some(s) => s.last_at(version),
        };
        let range_at = |version| match at {
            None => db.range_at(b"k:0"..b"k:9", version),
            Some(s) => s.range_at(b"k:0"..b"k:9", version),
        };
        let history_range = |versions: std::ops::RangeFrom<Version>| match at {
            None => db.history_range(b"k:1", versions),
            Some(s) => s.history_range(b"k:1", versions),
        };
        below(prefix_at(v1).map(drop), &what("prefix_at"));
        below(first_at(v1).map(drop), &what("first_at"));
        below(last_at(v1).map(drop), &what("last_at"));
        below(range_at(v1).map(|r| drop(r.rev())), &what("range_at(..).rev()"));
        below(history_range(v1..).map(drop), &what("history_range"));

        let keys = |range: zverse::Range| -> Vec<Vec<u8>> {
            range.map(|item| item.unwrap().0.to_vec()).collect()
        };
        assert_eq!(keys(prefix_at(v2).unwrap()), [b"k:1", b"k:2"], "{name}.prefix_at");
        assert_eq!(&first_at(v2).unwrap().unwrap().1[..], b"two", "{name}.first_at");
        assert_eq!(&last_at(v2).unwrap().unwrap().0[..], b"k:2", "{name}.last_at");
        assert_eq!(keys(range_at(v2).unwrap()).len(), 2, "{name}.range_at");
        let reversed: Vec<Vec<u8>> =
            range_at(v2).unwrap().rev().map(|i| i.unwrap().0.to_vec()).collect();
        assert_eq!(reversed, [b"k:2", b"k:1"], "{name}.range_at(..).rev()");
        let history: Vec<Version> = history_range(v2..).unwrap().map(|i| i.unwrap().0).collect();
        assert_eq!(history, [v2], "{name}.history_range from the horizon");
    }
    // A transaction's reads as of a version are checked too; its own start is pinned.
    let mut tx = db.transaction();
    below(tx.get(b"k:1", Some(v1)).map(drop), "transaction get as of v1");
    below(tx.scan(.., 10, Some(v1)).map(drop), "transaction scan as of v1");
    assert_eq!(tx.get(b"k:1", Some(v2)).unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(tx.scanr(b"k:".., 10, Some(v2)).unwrap().len(), 2);
    assert_eq!(tx.get(b"k:2", None).unwrap().as_deref(), Some(&b"kept"[..]));
    drop(tx);
    // No lower bound: what retention kept, as for `changes`.
    assert_eq!(db.history(b"k:1").unwrap().count(), 1);
    assert_eq!(db.history_range(b"k:1", ..=v2).unwrap().count(), 1);
    assert_eq!(snapshot.history(b"k:1").unwrap().count(), 1);
}

/// A snapshot pins its version: compaction keeps what a read there needs, so the read is
/// exact and answered, whatever the horizon.
#[test]
fn a_pinned_snapshot_reads_exactly_below_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options().retention(Retention::Versions(1))).unwrap();
    let v1 = db.put(b"k", b"one").unwrap();
    let snapshot = db.snapshot();
    assert_eq!(snapshot.version(), v1);
    db.put(b"k", b"two").unwrap();
    let v3 = db.put(b"k", b"three").unwrap();
    db.compact().unwrap();
    // "two" was dropped (neither newest nor pinned): reads from it to "three" are refused.
    assert_eq!(db.horizon(), v3);
    assert_eq!(snapshot.get(b"k").unwrap().as_deref(), Some(&b"one"[..]));
    assert!(matches!(db.get_at(b"k", Version::new(v1.get() + 1)), Err(Error::BelowHorizon { .. })));
    assert_eq!(db.get_at(b"k", v1).unwrap().as_deref(), Some(&b"one"[..]), "pinned: exact");
}

/// With everything retained nothing is dropped, and nothing is ever refused.
#[test]
fn retention_all_never_raises_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let v1 = db.put(b"k", b"one").unwrap();
    db.put(b"k", b"two").unwrap();
    db.delete(b"k").unwrap();
    db.compact().unwrap();
    assert_eq!(db.horizon(), Version::ZERO);
    assert_eq!(db.get_at(b"k", v1).unwrap().as_deref(), Some(&b"one"[..]));
}

// ---- Item 7: logs do not pile up.

/// Before: every open that wrote left a new log until a flush: 200 opens left 202 files.
#[test]
fn many_short_sessions_leave_one_log() {
    let dir = tempfile::tempdir().unwrap();
    for index in 0..200u32 {
        let db = backend::open(dir.path(), options()).unwrap();
        db.put(format!("k{index}").as_bytes(), b"v").unwrap();
        db.close().unwrap();
    }
    assert_eq!(names(dir.path()), ["00000000000000000001.log", "LOCK", "MANIFEST"]);
    let db = backend::open(dir.path(), options()).unwrap();
    let stats = db.stats();
    assert_eq!((stats.file_count, stats.log_count), (3, 1));
    assert_eq!(stats.memtable_versions, 200);
    db.flush().unwrap();
    let stats = db.stats();
    assert_eq!((stats.file_count, stats.segment_count), (4, 1), "MANIFEST, LOCK, log, segment");
    assert_eq!(names(dir.path()).len(), 4, "{:?}", names(dir.path()));
}

// ---- Item 8: reading without write access.

/// An `Io` that reads through std and refuses every call that would change the disk or take
/// a lock, as a read-only mount or another user's directory would. `before_segment_open` runs
/// once, before the first segment is opened (to let a writer compact meanwhile).
#[derive(Default)]
struct NoWrites {
    before_segment_open: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for NoWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoWrites")
    }
}

fn refused(what: &str, path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("{what} {}", path.display()))
}

impl Io for NoWrites {
    fn name(&self) -> &'static str {
        "no-writes"
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        Err(refused("create_dir_all", dir))
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        StdIo.list_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<IoLock>> {
        Err(refused("lock", path))
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Err(refused("create", path))
    }
    fn open_read_write(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Err(refused("open for writing", path))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        if path.extension().is_some_and(|e| e == "seg") {
            let hook = self.before_segment_open.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        StdIo.open_read(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        Err(refused("remove", path))
    }
    fn rename(&self, from: &Path, _to: &Path) -> io::Result<()> {
        Err(refused("rename", from))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        Err(refused("sync", dir))
    }
}

fn read_only() -> Options {
    options().read_only(true).create_if_missing(false)
}

/// A closed database with a segment, a log tail and no `LOCK` file.
fn database(dir: &Path) {
    let db = backend::open(dir, options()).unwrap();
    db.put(b"a", b"in a segment").unwrap();
    db.flush().unwrap();
    db.put(b"b", b"in the log").unwrap();
    db.close().unwrap();
    drop(db);
    fs::remove_file(dir.join("LOCK")).unwrap();
}

/// Before: every open, reads included, took the lock, created a log, synced and deleted
/// files, so it failed without write access.
#[test]
fn a_read_only_open_reads_without_any_write_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    database(dir.path());
    let before: Vec<(String, Vec<u8>)> = names(dir.path())
        .into_iter()
        .map(|n| (n.clone(), fs::read(dir.path().join(n)).unwrap()))
        .collect();
    let db = Db::open_with_io(dir.path(), read_only(), Arc::new(NoWrites::default())).unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"in a segment"[..]));
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"in the log"[..]));
    assert_eq!(db.range(..).unwrap().count(), 2);
    // The log as read: its frames end there, and only the zeros written ahead of them (a
    // `Sync` log's fill) follow.
    let log = fs::read(with_suffix(dir.path(), ".log").remove(0)).unwrap();
    let log_bytes = usize::try_from(db.stats().log_bytes).unwrap();
    assert!(log_bytes > 24 && log_bytes <= log.len(), "the log as read: {log_bytes}");
    assert!(log[log_bytes..].iter().all(|&byte| byte == 0), "the log as read: {log_bytes}");
    db.check().unwrap();
    assert!(matches!(db.put(b"c", b"v"), Err(Error::OpenedReadOnly)));
    assert!(matches!(db.delete(b"a"), Err(Error::OpenedReadOnly)));
    let mut batch = db.batch();
    batch.put(b"c", b"v");
    assert!(matches!(batch.commit(), Err(Error::OpenedReadOnly)));
    assert!(matches!(db.flush(), Err(Error::OpenedReadOnly)));
    assert!(matches!(db.compact(), Err(Error::OpenedReadOnly)));
    db.close().unwrap();
    let after: Vec<(String, Vec<u8>)> = names(dir.path())
        .into_iter()
        .map(|n| (n.clone(), fs::read(dir.path().join(n)).unwrap()))
        .collect();
    assert_eq!(after, before, "no file created, changed or removed");
}

/// A read-only open beside a writer in the same directory: no lock conflict; its view is the
/// database as of its open.
#[test]
fn a_read_only_open_works_while_a_writer_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let writer = backend::open(dir.path(), options()).unwrap();
    writer.put(b"a", b"1").unwrap();
    writer.flush().unwrap();
    writer.put(b"b", b"2").unwrap();
    let reader = backend::open(dir.path(), read_only()).unwrap();
    writer.put(b"c", b"3").unwrap();
    assert_eq!(reader.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(reader.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(reader.get(b"c").unwrap(), None, "the view is as of the open");
    let again = backend::open(dir.path(), read_only()).unwrap();
    assert_eq!(again.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
}

/// A read-only open never creates: an empty or missing directory is "not found".
#[test]
fn a_read_only_open_of_nothing_is_not_found_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for path in [dir.path(), missing.as_path()] {
        match backend::open(path, options().read_only(true)) {
            Err(Error::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::NotFound),
            other => panic!("{}: expected NotFound, got {other:?}", path.display()),
        }
    }
    assert!(names(dir.path()).is_empty() && !missing.exists());
}

/// A writer's compaction deletes the segments the manifest named between the reader's
/// manifest read and its segment opens: the reader reads the new manifest and opens.
#[test]
fn a_read_only_open_starts_over_when_a_writer_compacts_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(backend::open(dir.path(), options()).unwrap());
    for round in 0..3 {
        writer.put(format!("k{round}").as_bytes(), b"v").unwrap();
        writer.flush().unwrap();
    }
    let segments_before = with_suffix(dir.path(), ".seg");
    assert_eq!(segments_before.len(), 3);
    let io = NoWrites::default();
    let compacting = Arc::clone(&writer);
    *io.before_segment_open.lock().unwrap() = Some(Box::new(move || {
        compacting.compact().unwrap();
    }));
    let reader = Db::open_with_io(dir.path(), read_only(), Arc::new(io)).unwrap();
    assert!(segments_before.iter().all(|s| !s.exists()), "the compaction removed them");
    assert_eq!(reader.stats().segment_count, 1, "the reader opened the compacted segment");
    for round in 0..3 {
        assert!(reader.get(format!("k{round}").as_bytes()).unwrap().is_some());
    }
}

// ---- Item 9: foreign or missing manifests; Periodic(0).

/// Before: a foreign `MANIFEST` was refused only after the `LOCK` file was created.
#[test]
fn a_foreign_manifest_is_refused_and_no_lock_is_left() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("MANIFEST"), b"include lib/*.pm\n").unwrap();
    let (file, what) = expect_corruption(backend::open(dir.path(), options()));
    assert_eq!(file, dir.path().join("MANIFEST"), "{what}");
    assert_eq!(names(dir.path()), ["MANIFEST"], "no LOCK file left");
}

/// A database directory whose `MANIFEST` was deleted says so, instead of "not a database".
#[test]
fn a_missing_manifest_beside_logs_and_segments_is_corruption_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    database(dir.path());
    fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    let (file, what) = expect_corruption(backend::open(dir.path(), options()));
    assert_eq!(file, dir.path().join("MANIFEST"));
    assert!(what.contains("missing"), "{what}");
    assert!(!dir.path().join("LOCK").exists());
}

/// A manifest of format version 1 (no log set) is refused with a typed error naming it.
#[test]
fn a_version_1_manifest_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    database(dir.path());
    let path = dir.path().join("MANIFEST");
    let mut bytes = fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    fs::write(&path, bytes).unwrap();
    match backend::open(dir.path(), options()) {
        Err(Error::FormatUnsupported { file, version: 1, version_supported: 3 }) => {
            assert_eq!(file, path);
        }
        other => panic!("expected FormatUnsupported, got {other:?}"),
    }
    assert!(!dir.path().join("LOCK").exists());
}

// Periodic(0) while idle: `periodic_idle.rs`, alone in its process (it measures process CPU).
