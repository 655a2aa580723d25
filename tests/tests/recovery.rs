//! Recovery, one scenario per test, on real files (the backend `ZVERSE_TEST_BACKEND` names): what
//! `Db::open` does with a torn log tail, corrupt logs, segments and manifests, missing files, files
//! a crash left behind, a held lock and a directory that is not a database. Damage is made by
//! editing the files of a closed database; each test says which crash or fault the edited files
//! stand for.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use zverse::{Db, Durability, Error, Options, Version};
use zverse_tests::backend;

/// Logs without a zero-filled tail: these tests find frame ends from the file's length (the
/// preallocated tail has its own tests, `log_preallocation.rs`).
fn options() -> Options {
    Options::default().durability(Durability::Sync).log_preallocation_bytes(0)
}

fn log_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.log"))
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    paths.sort();
    paths
}

fn key(index: usize) -> Vec<u8> {
    format!("key:{index:03}").into_bytes()
}

fn value(index: usize) -> Vec<u8> {
    format!("value {index} ").repeat(index % 7 + 1).into_bytes()
}

/// A new database in `dir` with `count` Sync puts, one log frame each, then closed. Returns
/// each put's version and where each frame ends in log 1 (the first log of a new database).
fn database_with_frames(dir: &Path, count: usize) -> (Vec<Version>, Vec<u64>) {
    let db = backend::open(dir, options()).unwrap();
    let mut versions = Vec::new();
    let mut frame_ends = Vec::new();
    for index in 0..count {
        versions.push(db.put(&key(index), &value(index)).unwrap());
        frame_ends.push(fs::metadata(log_path(dir, 1)).unwrap().len());
    }
    db.close().unwrap();
    (versions, frame_ends)
}

/// The keys `0..count` that read back with their values; panics on a wrong value.
fn readable_keys(db: &Db, count: usize) -> Vec<usize> {
    (0..count)
        .filter(|&index| match db.get(&key(index)).unwrap() {
            Some(found) => {
                assert_eq!(&*found, value(index).as_slice(), "key {index}");
                true
            }
            None => false,
        })
        .collect()
}

fn expect_corruption(result: zverse::Result<Db>) -> (PathBuf, u64, String) {
    match result {
        Err(Error::Corruption { file, offset, what }) => (file, offset, what),
        Err(other) => panic!("expected Error::Corruption, got {other}"),
        Ok(_) => panic!("expected Error::Corruption, the open succeeded"),
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn append(path: &Path, extra: &[u8]) {
    let mut bytes = fs::read(path).unwrap();
    bytes.extend_from_slice(extra);
    fs::write(path, bytes).unwrap();
}

/// Opens, checks that exactly keys `0..kept` of `count` are there, writes once more, reopens,
/// checks again: recovery left a usable database.
fn check_opens_with_first(dir: &Path, count: usize, kept: usize) {
    let db = backend::open(dir, options()).unwrap();
    assert_eq!(readable_keys(&db, count), (0..kept).collect::<Vec<_>>());
    db.put(b"after", b"recovery").unwrap();
    db.close().unwrap();
    drop(db);
    let db = backend::open(dir, options()).unwrap();
    assert_eq!(readable_keys(&db, count), (0..kept).collect::<Vec<_>>());
    assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"recovery"[..]));
}

// ---- Torn tails of the newest log: the crash hit the last, unacknowledged frame.

/// Bytes of the seal a clean close appends to the log, and recovery to the newest log it
/// replays before it starts a newer one: a frame header with an empty body.
const SEAL_LEN: u64 = 40;

#[test]
fn torn_tail_cut_mid_frame_loses_only_the_torn_frame_and_is_truncated() {
    for cut_into_last in [1, 20, 32, 33] {
        let dir = tempfile::tempdir().unwrap();
        let (_, ends) = database_with_frames(dir.path(), 5);
        let log = log_path(dir.path(), 1);
        let file = fs::OpenOptions::new().write(true).open(&log).unwrap();
        file.set_len(ends[3] + cut_into_last).unwrap();
        drop(file);
        backend::open(dir.path(), options()).unwrap().close().unwrap();
        let len = fs::metadata(&log).unwrap().len();
        assert_eq!(len, ends[3] + SEAL_LEN, "cut {cut_into_last}: truncated, sealed at close");
        check_opens_with_first(dir.path(), 5, 4);
    }
}

/// Zeros after the last frame are a preallocated log's zero-filled tail: a clean end, kept.
#[test]
fn zeros_after_the_last_frame_are_a_clean_end_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ends) = database_with_frames(dir.path(), 5);
    append(&log_path(dir.path(), 1), &[0; 4096]);
    backend::open(dir.path(), options()).unwrap().close().unwrap();
    // Not truncated: this close's seal (the log is appended to after the last one) overwrites
    // the start of the zeros.
    let len = fs::metadata(log_path(dir.path(), 1)).unwrap().len();
    assert_eq!(len, ends[4] + SEAL_LEN + 4096, "the zero tail is not cut");
    check_opens_with_first(dir.path(), 5, 5);
    let len = fs::metadata(log_path(dir.path(), 1)).unwrap().len();
    assert_eq!(len, ends[4] + SEAL_LEN + 4096, "later appends land inside the zeros");
}

#[test]
fn garbage_after_the_last_frame_is_a_torn_tail_and_lose_nothing() {
    let mut rng = fastrand::Rng::with_seed(7);
    for garbage_len in [1, 31, 32, 33, 700, 5000] {
        let dir = tempfile::tempdir().unwrap();
        database_with_frames(dir.path(), 5);
        let garbage: Vec<u8> = (0..garbage_len).map(|_| rng.u8(..)).collect();
        append(&log_path(dir.path(), 1), &garbage);
        check_opens_with_first(dir.path(), 5, 5);
    }
}

#[test]
fn a_last_frame_cut_short_and_followed_by_garbage_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ends) = database_with_frames(dir.path(), 5);
    let log = log_path(dir.path(), 1);
    let mut bytes = fs::read(&log).unwrap();
    bytes.truncate(usize::try_from(ends[3]).unwrap() + 40);
    bytes.extend((0..600u32).map(|i| (i * 31 % 251) as u8));
    fs::write(&log, bytes).unwrap();
    check_opens_with_first(dir.path(), 5, 4);
}

/// A crash during the write of the last frame in which the frame's first sector was lost and
/// a later one landed: the bytes after the lost frame header hold the frame's value. That
/// value may contain anything, including the exact image of a frame header claiming that
/// everything was synced (say the user stores a ZVerse log as a value). Frame header checksums
/// are seeded with the log's random nonce, so such bytes never pass for a frame: the write was
/// never acknowledged, and the open truncates it.
#[test]
fn user_bytes_that_look_like_a_frame_cannot_turn_a_torn_tail_into_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ends) = database_with_frames(dir.path(), 4);
    // The second session appends to the same log, after the first one's seal.
    let frame_start = usize::try_from(ends[3] + SEAL_LEN).unwrap();
    let mut user_value = vec![b'x'; 600];
    let fake_at = frame_start + 40 + 30 + 600; // where the fake lands, roughly
    for shift in 0..8 {
        // Frame headers as the format describes them, claiming a synced log, at every offset
        // near where they land; checksummed the only way a user can: without the nonce.
        let at = (fake_at + shift) as u64;
        let mut fake = vec![0u8; 40];
        fake[12] = 1;
        fake[16..24].copy_from_slice(&at.to_le_bytes());
        fake[24..32].copy_from_slice(&at.to_le_bytes());
        fake[32..40].copy_from_slice(&zverse_core::checksum::checksum(&[]).to_le_bytes());
        let header_checksum = zverse_core::checksum::checksum(&fake[8..]);
        fake[..8].copy_from_slice(&header_checksum.to_le_bytes());
        user_value.extend_from_slice(&fake);
    }
    {
        let db = backend::open(dir.path(), options()).unwrap();
        db.put(b"a log file, stored as a value", &user_value).unwrap();
        db.close().unwrap();
    }
    // The fifth frame went to the log after the first session's seal; tear it as a crash
    // would: the sector holding its header (after the synced frames) never reached the disk.
    let log = log_path(dir.path(), 1);
    let mut bytes = fs::read(&log).unwrap();
    assert!(bytes.len() > frame_start + 700, "one frame holding the value");
    // The crash came before the close that sealed the log.
    bytes.truncate(bytes.len() - SEAL_LEN as usize);
    bytes[frame_start..frame_start + 488].fill(0);
    fs::write(&log, bytes).unwrap();
    check_opens_with_first(dir.path(), 5, 4);
}

// ---- Damage to synced bytes: corruption, named, never skipped.

/// Bytes of a log file's header (magic, nonce, checksum); the first frame follows it.
const LOG_HEADER_LEN: u64 = 24;

#[test]
fn a_damaged_log_header_is_corruption() {
    for byte in [0, 8, 23] {
        let dir = tempfile::tempdir().unwrap();
        database_with_frames(dir.path(), 3);
        let log = log_path(dir.path(), 1);
        flip_byte(&log, byte);
        let (file, offset, what) = expect_corruption(backend::open(dir.path(), options()));
        assert_eq!((file, offset), (log, 0), "byte {byte}: {what}");
    }
}

#[test]
fn a_flipped_byte_in_a_synced_frame_followed_by_synced_frames_is_corruption() {
    for frame in [0, 2] {
        for into_frame in [0, 8, 31, 32, 40, 47] {
            let dir = tempfile::tempdir().unwrap();
            let (_, ends) = database_with_frames(dir.path(), 5);
            let start = if frame == 0 { LOG_HEADER_LEN } else { ends[frame - 1] };
            let log = log_path(dir.path(), 1);
            flip_byte(&log, start + into_frame);
            let (file, offset, what) = expect_corruption(backend::open(dir.path(), options()));
            let ctx = format!("frame {frame}, byte {into_frame}: {what}");
            assert_eq!(file, log, "{ctx}");
            assert_eq!(offset, start, "{ctx}: the damaged frame's offset");
            let log_bytes = fs::metadata(&log).unwrap().len();
            assert_eq!(log_bytes, ends[4] + SEAL_LEN, "{ctx}: nothing was truncated");
        }
    }
}

// A torn or cut log older than the newest: `an_older_log_cut_at_a_frame_boundary_is_corruption`
// in corruption.rs (a newer log next to an older one needs a flush that failed after its
// rotation, which the simulated disk makes; reopening appends to the newest log).

/// A database with data in one segment (flushed) and closed; returns the segment's path.
fn database_with_segment(dir: &Path, count: usize) -> PathBuf {
    let db = backend::open(dir, options()).unwrap();
    for index in 0..count {
        db.put(&key(index), &value(index)).unwrap();
    }
    db.flush().unwrap();
    db.close().unwrap();
    let segments = files_with_suffix(dir, ".seg");
    assert_eq!(segments.len(), 1, "one flush, one segment");
    segments.into_iter().next().unwrap()
}

#[test]
fn a_corrupt_segment_footer_is_corruption_naming_the_segment() {
    // The footer is the last 152 bytes: magic, format version, section handles, checksum.
    for from_end in [1, 8, 100, 145, 152] {
        let dir = tempfile::tempdir().unwrap();
        let segment = database_with_segment(dir.path(), 50);
        let len = fs::metadata(&segment).unwrap().len();
        flip_byte(&segment, len - from_end);
        let (file, _, what) = expect_corruption(backend::open(dir.path(), options()));
        assert_eq!(file, segment, "byte {from_end} from the end: {what}");
    }
}

#[test]
fn a_corrupt_segment_block_is_corruption_never_wrong_data() {
    let count = 200;
    for offset in [0, 17, 300, 1000, 4000] {
        let dir = tempfile::tempdir().unwrap();
        let segment = database_with_segment(dir.path(), count);
        flip_byte(&segment, offset);
        let db = match backend::open(dir.path(), options()) {
            Err(Error::Corruption { file, .. }) => {
                assert_eq!(file, segment, "offset {offset}");
                continue;
            }
            other => other.unwrap(),
        };
        // Opened: every read returns the right value or a Corruption naming the segment.
        let mut corruption_count = 0;
        for index in 0..count {
            match db.get(&key(index)) {
                Ok(found) => assert_eq!(found.as_deref(), Some(value(index).as_slice()), "{index}"),
                Err(Error::Corruption { file, .. }) => {
                    assert_eq!(file, segment, "offset {offset}");
                    corruption_count += 1;
                }
                Err(other) => panic!("offset {offset}, key {index}: {other}"),
            }
        }
        let scanned: Result<Vec<_>, _> = db.range(..).unwrap().collect();
        assert!(
            corruption_count > 0 || scanned.is_err(),
            "offset {offset}: a flipped byte in the data was never noticed"
        );
    }
}

#[test]
fn a_segment_the_manifest_names_that_is_missing_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let segment = database_with_segment(dir.path(), 20);
    fs::remove_file(&segment).unwrap();
    let (file, _, what) = expect_corruption(backend::open(dir.path(), options()));
    assert_eq!(file, segment, "{what}");
}

#[test]
fn a_segment_shorter_than_the_manifest_says_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let segment = database_with_segment(dir.path(), 20);
    let len = fs::metadata(&segment).unwrap().len();
    fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 1).unwrap();
    let (file, _, what) = expect_corruption(backend::open(dir.path(), options()));
    assert_eq!(file, segment, "{what}");
}

#[test]
fn a_corrupt_manifest_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    database_with_segment(dir.path(), 20);
    let manifest = dir.path().join("MANIFEST");
    let len = fs::metadata(&manifest).unwrap().len();
    for offset in [0, 9, 20, len - 1] {
        flip_byte(&manifest, offset);
        let (file, _, what) = expect_corruption(backend::open(dir.path(), options()));
        assert_eq!(file, manifest, "offset {offset}: {what}");
        flip_byte(&manifest, offset);
    }
    fs::OpenOptions::new().write(true).open(&manifest).unwrap().set_len(len / 2).unwrap();
    let (file, _, what) = expect_corruption(backend::open(dir.path(), options()));
    assert_eq!(file, manifest, "truncated: {what}");
}

// ---- Files a crash leaves behind.

#[test]
fn a_leftover_manifest_tmp_and_an_orphan_segment_are_removed_and_the_data_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let segment = database_with_segment(dir.path(), 30);
    {
        let db = backend::open(dir.path(), options()).unwrap();
        db.put(b"in the log", b"only").unwrap();
        db.close().unwrap();
    }
    // A flush that crashed after writing its segment, before the manifest named it; and a
    // manifest replacement that crashed before its rename.
    // Its number is one the manifest reserved (below its `file_number_next`, at byte 16).
    let manifest = fs::read(dir.path().join("MANIFEST")).unwrap();
    let file_number_next = u64::from_le_bytes(manifest[16..24].try_into().unwrap());
    let orphan = dir.path().join(format!("{:020}.seg", file_number_next - 1));
    fs::copy(&segment, &orphan).unwrap();
    fs::write(dir.path().join("MANIFEST.tmp"), b"half a manifest").unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    assert!(!orphan.exists(), "the orphan segment is removed");
    assert!(!dir.path().join("MANIFEST.tmp").exists(), "MANIFEST.tmp is removed");
    assert_eq!(readable_keys(&db, 30).len(), 30);
    assert_eq!(db.get(b"in the log").unwrap().as_deref(), Some(&b"only"[..]));
    db.put(b"new", b"write").unwrap();
    db.flush().unwrap();
    db.close().unwrap();
    drop(db);
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(readable_keys(&db, 30).len(), 30);
    assert_eq!(db.get(b"new").unwrap().as_deref(), Some(&b"write"[..]));
    assert_eq!(db.stats().segment_count, 2);
}

/// A crash while a new database wrote its first manifest, before the rename: the directory
/// holds only `MANIFEST.tmp` (the crash sweep in crash.rs reaches this state at I/O calls
/// 7-9 of the first open). The database was never created: open creates it.
#[test]
fn a_crash_while_creating_a_database_leaves_a_manifest_tmp_that_open_replaces() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("MANIFEST.tmp"), b"half a manifest").unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    drop(db);
    assert!(!dir.path().join("MANIFEST.tmp").exists());
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

// ---- Locks and foreign directories.

#[test]
fn a_second_open_while_the_first_is_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    for _ in 0..2 {
        let second = backend::open(dir.path(), options());
        assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    }
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]), "the first is unaffected");
    db.put(b"k2", b"v2").unwrap();
    drop(db);
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.get(b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
}

/// Every file in `dir` with its bytes.
fn directory_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().into_owned(), fs::read(entry.path()).unwrap())
        })
        .collect()
}

#[test]
fn a_foreign_directory_is_not_a_database_and_its_files_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    fs::write(dir.path().join("00000000000000000001.log"), b"someone else's log").unwrap();
    let before = directory_contents(dir.path());
    let result = backend::open(dir.path(), options());
    assert!(matches!(result, Err(Error::NotADatabase { .. })), "{result:?}");
    let after = directory_contents(dir.path());
    assert_eq!(after, before, "nothing in the directory changed, and no LOCK file was added");
}

/// Every open starts a new log; logs that hold no write are removed at the next open, so a
/// database opened and closed many times without writes keeps one log, not one per open.
#[test]
fn opens_without_writes_do_not_pile_up_empty_logs() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        backend::open(dir.path(), options()).unwrap().close().unwrap();
    }
    let logs = files_with_suffix(dir.path(), ".log");
    assert_eq!(logs.len(), 1, "{logs:?}");
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    drop(db);
    backend::open(dir.path(), options()).unwrap().close().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]), "a log with a write stays");
}

/// `close()` releases the directory whatever handles are still alive: a snapshot that
/// outlives it reads `Closed`, and the database can be reopened at once.
#[test]
fn a_snapshot_alive_after_close_does_not_keep_the_directory_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    let snapshot = db.snapshot();
    db.close().unwrap();
    drop(db);
    assert!(matches!(snapshot.get(b"k"), Err(Error::Closed)));
    let db = backend::open(dir.path(), options()).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    drop(snapshot);
}

// ---- Replay inserts the log's writes in groups (sorted, searched in lockstep).

/// Batches of keys in no order, with a key written twice in one batch (the later write wins)
/// and keys rewritten and deleted across batches, over more ops than one replay group holds
/// (4,096), with small frames (single puts) between: after a reopen that replays them, every
/// key reads at every version exactly as it did before the close.
#[test]
fn replay_of_unsorted_batches_reads_every_version_as_written() {
    const KEYS: usize = 700;
    let seed = std::env::var("ZVERSE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(13);
    println!("seed {seed} (ZVERSE_SEED)");
    let mut rng = seed | 1;
    let mut next = move |bound: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        usize::try_from(rng % bound as u64).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), Options::default().durability(Durability::None)).unwrap();
    let mut versions = Vec::new();
    for round in 0..30 {
        let mut batch = db.batch();
        for op in 0..300 {
            let index = next(KEYS);
            if op % 50 == 7 {
                batch.delete(&key(index));
            } else {
                batch.put(&key(index), &value(index + round));
            }
            if op % 100 == 3 {
                batch.put(&key(index), &value(index + round + 1)); // The later write wins.
            }
        }
        versions.push(batch.commit().unwrap());
        versions.push(db.put(&key(next(KEYS)), &value(round)).unwrap());
    }
    let reads = |db: &Db| -> Vec<Option<Vec<u8>>> {
        let at = |index, version| db.get_at(&key(index), version).unwrap().map(|v| v.to_vec());
        versions
            .iter()
            .flat_map(|&version| (0..KEYS).map(move |index| at(index, version)))
            .collect()
    };
    let before = reads(&db);
    assert_eq!(db.stats().segment_count, 0, "every write is still in the log");
    db.close().unwrap();
    let db = backend::open(dir.path(), Options::default().durability(Durability::None)).unwrap();
    assert_eq!(db.stats().segment_count, 0, "every write came back from the log");
    assert!(before == reads(&db), "seed {seed}: a version reads differently after replay");
    db.close().unwrap();
}
