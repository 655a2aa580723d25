//! The checks the fuzz targets in `fuzz/` run on each input, shared with the corpus replay
//! tests (`tests/tests/fuzz_corpus.rs`) so that `cargo test` replays every committed corpus
//! file through exactly the code libFuzzer ran, on stable, without libFuzzer.
//!
//! Each `check_*` function takes arbitrary bytes, must never panic on them, and panics (with
//! an `assert!` naming what broke) only when the code under test broke a promise. Each
//! `seeds_*` function returns the valid inputs the corpus was seeded with.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use zverse::io::Io as _;
use zverse::{Db, Durability, Options};
use zverse_core::Version;
use zverse_core::log::{
    Frames, LOG_HEADER_LEN, LogPosition, Records, Tail, Verdict, encode_log_header, seal_frame,
};
use zverse_core::manifest::{FORMAT_VERSION, Manifest};
use zverse_core::record::{
    BatchBuilder, RecordKind, decode_from, encode_delete_into, encode_put_into,
};
use zverse_core::segment::{Order, Segment, SegmentBuilder, SegmentOptions};

use crate::sim_io::{CrashVariant, SimIo};

/// Target `record_decode`: [`decode_from`] and [`Records`] over arbitrary bytes, and the same
/// bytes as a log file behind a valid log header ([`Frames`] and the damage rule). A decoded
/// record re-encodes to exactly its bytes; the end of a log follows the rule's promises.
/// Runs twice: on the bytes, and with the checksums of the records they frame recomputed
/// ([`records_with_checksums_fixed`]), so that mutations reach the body decoder.
pub fn check_record(data: &[u8]) {
    check_record_bytes(data);
    check_record_bytes(&records_with_checksums_fixed(data));
}

/// `data` read as records back to back, each with its body and header checksums recomputed
/// (the body's first: the header covers it), up to the first record that runs past the end.
#[must_use]
pub fn records_with_checksums_fixed(data: &[u8]) -> Vec<u8> {
    use zverse_core::checksum::checksum;
    use zverse_core::record::{BODY_CHECKSUM_OFFSET, BODY_LEN_OFFSET, HEADER_LEN};
    let mut bytes = data.to_vec();
    let mut offset = 0;
    while let Some(header) = bytes.get(offset..offset + HEADER_LEN) {
        let body_len_field = header.get(BODY_LEN_OFFSET..BODY_LEN_OFFSET + 4);
        let body_len = body_len_field
            .map_or(0, |field| u32::from_le_bytes(field.try_into().expect("4 bytes")) as usize);
        let body_start = offset + HEADER_LEN;
        let Some(body) = bytes.get(body_start..body_start + body_len) else { break };
        let body_checksum = checksum(body).to_le_bytes();
        let at = offset + BODY_CHECKSUM_OFFSET;
        bytes[at..at + 8].copy_from_slice(&body_checksum);
        let header_checksum = checksum(&bytes[offset + 8..body_start]).to_le_bytes();
        bytes[offset..offset + 8].copy_from_slice(&header_checksum);
        offset = body_start + body_len;
    }
    bytes
}

fn check_record_bytes(data: &[u8]) {
    if let Ok((record, record_len)) = decode_from(data) {
        assert_eq!(record.as_bytes().len(), record_len, "record length");
        assert_eq!(reencode(&record), record.as_bytes(), "a decoded record re-encodes to itself");
    }
    let mut offset_next = 0;
    for record in Records::new(data) {
        match record {
            Ok(record) => offset_next += record.as_bytes().len(),
            Err(bad) => {
                assert_eq!(bad.offset, offset_next, "the bad record starts after the last one");
                offset_next = data.len();
            }
        }
    }
    assert_eq!(offset_next, data.len(), "records and the bad one account for every byte");
    check_log(data);
}

/// `data` as a log: behind a valid log header in place of its first bytes, and as the body of
/// the one frame of a log. Frames are read up to the damage, whose verdict keeps the promises
/// of `zverse_core::log::RULES`.
fn check_log(data: &[u8]) {
    const NONCE: u64 = 0x00C0_FFEE;
    let mut log = encode_log_header(NONCE).to_vec();
    log.extend_from_slice(data.get(LOG_HEADER_LEN..).unwrap_or_default());
    check_log_end(&log);
    let mut framed = encode_log_header(NONCE).to_vec();
    let frame_offset = framed.len() as u64;
    framed.extend_from_slice(&[0; zverse_core::log::FRAME_HEADER_LEN]);
    framed.extend_from_slice(data);
    seal_frame(&mut framed[LOG_HEADER_LEN..], NONCE, frame_offset, frame_offset);
    let end = check_log_end(&framed);
    assert_eq!(end.offset, framed.len(), "one intact frame is the whole log");
    let tail = if data.is_empty() { Tail::SealedEnd } else { Tail::UnsealedEnd };
    assert_eq!(end.tail, tail, "a log ending with its one frame");
}

fn check_log_end(log: &[u8]) -> zverse_core::log::LogEnd {
    let frames = Frames::new(log).expect("a valid log header");
    let mut offset_next = LOG_HEADER_LEN;
    for frame in frames.clone() {
        assert_eq!(frame.offset(), offset_next, "frames are back to back");
        offset_next = frame.end();
        for _ in frame.records() {}
    }
    let ends = [LogPosition::Older, LogPosition::Newest, LogPosition::NewestReadOnly]
        .map(|position| frames.clone().end(position));
    for end in ends {
        assert_eq!((end.offset, end.tail), (offset_next, ends[0].tail), "one classification");
    }
    assert_eq!(ends[2].verdict, Verdict::End, "a read-only open never truncates nor fails");
    let at_end = matches!(ends[0].tail, Tail::SealedEnd | Tail::UnsealedEnd);
    assert_eq!(at_end, ends[1].verdict == Verdict::End, "the newest log ends only at its end");
    ends[0]
}

/// The record `record` encodes, built again from its decoded fields.
fn reencode(record: &zverse_core::record::Record<'_>) -> Vec<u8> {
    let version = record.version();
    let mut out = vec![0; record.as_bytes().len()];
    let op = record.ops().next();
    let len = match (record.kind(), op) {
        (RecordKind::Put, Some(op)) => {
            encode_put_into(&mut out, version, op.key, op.value.expect("a put has a value"))
        }
        (RecordKind::Delete, Some(op)) => encode_delete_into(&mut out, version, op.key),
        (RecordKind::Batch, _) => {
            let mut batch = BatchBuilder::new();
            for op in record.ops() {
                match op.value {
                    Some(value) => batch.put(op.key, value),
                    None => batch.delete(op.key),
                }
                .expect("a decoded op is within the limits");
            }
            return batch.finish(version);
        }
        (kind, None) => panic!("a {kind:?} record without its op"),
    }
    .expect("a decoded record re-encodes");
    out.truncate(len);
    out
}

/// Target `segment_open`: [`Segment::open`] over arbitrary bytes; a segment that opens answers
/// every query, run to exhaustion, without panicking and without yielding more entries than it
/// holds. Runs twice: on the bytes, and on the bytes with every checksum the footer locates
/// recomputed ([`segment_with_checksums_fixed`]), so that mutations reach the code behind the checks.
pub fn check_segment(data: &[u8]) {
    check_segment_bytes(data);
    check_segment_bytes(&segment_with_checksums_fixed(data));
}

/// `data` with the checksums of a segment recomputed where its footer says they are (data
/// blocks through the block index, then the sections, then the footer); other bytes unchanged.
#[must_use]
pub fn segment_with_checksums_fixed(data: &[u8]) -> Vec<u8> {
    let layout = FooterLayout {
        footer_len: zverse_core::segment::FOOTER_LEN,
        sections_at: 48,
        footer_checksum_at: 144,
        block_handle_len: 56,
    };
    with_checksums_fixed(data, &layout)
}

/// Where a segment kind's footer keeps what [`with_checksums_fixed`] needs. Both segment kinds
/// end in a footer of four section handles (offset, length, checksum: 24 bytes each) and a
/// checksum of the footer, and their block index starts with each block's `u32` offset and
/// `u32` length, the block's checksum right after its bytes.
pub struct FooterLayout {
    pub footer_len: usize,
    /// Footer offsets of the first section handle and of the footer checksum.
    pub sections_at: usize,
    pub footer_checksum_at: usize,
    /// Bytes of one block handle in the block index (section 0).
    pub block_handle_len: usize,
}

/// `data` with every checksum `layout`'s footer locates recomputed; other bytes unchanged.
#[must_use]
pub fn with_checksums_fixed(data: &[u8], layout: &FooterLayout) -> Vec<u8> {
    use zverse_core::checksum::checksum;
    const SECTION_HANDLE_LEN: usize = 24;
    let mut bytes = data.to_vec();
    let Some(footer_start) = bytes.len().checked_sub(layout.footer_len) else { return bytes };
    let read = |bytes: &[u8], at: usize, width: usize| -> Option<usize> {
        let field = bytes.get(at..at.checked_add(width)?)?;
        let mut le = [0; 8];
        le.get_mut(..width)?.copy_from_slice(field);
        usize::try_from(u64::from_le_bytes(le)).ok()
    };
    let write_checksum = |bytes: &mut Vec<u8>, start: usize, len: usize, at: usize| {
        let Some(sum) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            return;
        };
        let sum = checksum(sum).to_le_bytes();
        if let Some(slot) = at.checked_add(8).and_then(|end| bytes.get_mut(at..end)) {
            slot.copy_from_slice(&sum);
        }
    };
    let section = |bytes: &[u8], index: usize| {
        let at = footer_start + layout.sections_at + index * SECTION_HANDLE_LEN;
        Some((read(bytes, at, 8)?, read(bytes, at + 8, 8)?, at + 16))
    };
    if let Some((index_offset, index_len, _)) = section(&bytes, 0) {
        for handle in 0..index_len.min(bytes.len()) / layout.block_handle_len {
            let Some(at) = index_offset.checked_add(handle * layout.block_handle_len) else {
                break;
            };
            let len = read(&bytes, at.saturating_add(4), 4);
            if let (Some(offset), Some(len)) = (read(&bytes, at, 4), len) {
                write_checksum(&mut bytes, offset, len, offset.saturating_add(len));
            }
        }
    }
    for index in 0..4 {
        if let Some((offset, len, at)) = section(&bytes, index) {
            write_checksum(&mut bytes, offset, len, at);
        }
    }
    let footer_checksum_at = footer_start + layout.footer_checksum_at;
    write_checksum(&mut bytes, footer_start, layout.footer_checksum_at, footer_checksum_at);
    bytes
}

fn check_segment_bytes(data: &[u8]) {
    let Ok(segment) = Segment::open(data) else { return };
    let entry_count = segment.entry_count();
    // Every query stops at its first error, so it yields at most every entry and one error.
    let bound = usize::try_from(entry_count).unwrap_or(usize::MAX).saturating_add(1);
    let mut keys: Vec<&[u8]> = vec![b"", b"a", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff"];
    let mut versions = vec![Version::new(0), Version::new(1), Version::MAX];
    let iter_len = exhaust(segment.iter(), bound, |entry| {
        keys.push(entry.key);
        versions.push(entry.version);
    });
    assert!(iter_len <= bound, "iter yields at most every entry");
    let key_order_len = exhaust(segment.iter_key_order(), bound, |_| {});
    assert!(key_order_len <= bound, "iter_key_order yields at most every entry");
    let backward_len = exhaust(segment.iter_key_order().rev(), bound, |_| {});
    assert!(backward_len <= bound, "iter_key_order from the back yields at most every entry");
    if segment.order() == Order::Key {
        // The key bounds come from metadata checked at open: never an error.
        assert!(segment.first_key().is_ok() && segment.last_key().is_ok(), "key bounds");
    }
    keys.truncate(16);
    versions.truncate(16);
    for &key in &keys {
        assert!(exhaust(segment.history(key), bound, |_| {}) <= bound, "history is bounded");
        for &version in &versions {
            let _ = segment.get_at(key, version);
            let range = segment.range_at(key.., version);
            assert!(exhaust(range, bound, |_| {}) <= bound, "range_at is bounded");
            let changes = segment.changes(..=key, version..);
            assert!(exhaust(changes, bound, |_| {}) <= bound, "changes is bounded");
        }
    }
}

/// Runs `items` until its first error or its end (but no further than `bound + 1` items),
/// calling `visit` on each entry; returns how many items it yielded.
fn exhaust<'a, E>(
    items: impl Iterator<Item = Result<zverse_core::entry::Entry<'a>, E>>,
    bound: usize,
    mut visit: impl FnMut(zverse_core::entry::Entry<'a>),
) -> usize {
    let mut count = 0;
    for item in items.take(bound.saturating_add(1)) {
        count += 1;
        match item {
            Ok(entry) => visit(entry),
            Err(_) => break,
        }
    }
    count
}

/// The database directory on the simulated disk of target `db_open`.
const DB_DIR: &str = "/db";

/// Target `db_open`: the first byte picks a file of a small, valid database (even: the
/// `MANIFEST`, odd: its newest log), the rest replaces that file's bytes, and the database is
/// opened on the simulated disk: it opens or returns an error, and once open answers reads
/// and closes without panicking.
pub fn check_db_open(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else { return };
    check_db_with_file(selector % 2 == 0, bytes);
}

/// Opens the baseline database with its `MANIFEST` (`manifest`) or its newest log replaced by
/// `bytes`; once open, it answers reads and closes without panicking.
fn check_db_with_file(manifest: bool, bytes: &[u8]) {
    let baseline = baseline();
    let io = baseline.io.after_crash(CrashVariant::KeepUnsynced);
    let name = if manifest { "MANIFEST" } else { baseline.log_name.as_str() };
    replace_file(&io, &Path::new(DB_DIR).join(name), bytes);
    let Ok(db) = Db::open_with_io(DB_DIR, db_options(), Arc::new(io)) else { return };
    let _ = db.get(b"k1");
    let _ = db.get_at(b"k2", Version::new(1));
    if let Ok(history) = db.history(b"k1") {
        history.for_each(drop);
    }
    if let Ok(range) = db.range(&b""[..]..) {
        range.take(1 << 12).for_each(drop);
    }
    if let Ok(changes) = db.changes(&b""[..].., ..) {
        changes.take(1 << 12).for_each(drop);
    }
    let _ = db.close();
}

/// The seed inputs of target `db_open`: the baseline database's manifest and log, unchanged.
#[must_use]
pub fn seeds_db_open() -> Vec<Vec<u8>> {
    let baseline = baseline();
    let dir = Path::new(DB_DIR);
    let manifest = baseline.io.read_file(&dir.join("MANIFEST")).expect("a manifest");
    let log = baseline.io.read_file(&dir.join(&baseline.log_name)).expect("a log");
    vec![[&[0][..], &manifest].concat(), [&[1][..], &log].concat()]
}

/// The database every `db_open` input starts from.
struct Baseline {
    /// The disk, after the database was closed.
    io: SimIo,
    /// The file name of its newest log, which holds writes not yet in a segment.
    log_name: String,
}

fn db_options() -> Options {
    // A log zero-filled one page ahead: the fuzzed log carries a preallocated tail, small.
    Options::default()
        .durability(Durability::Sync)
        .memtable_bytes_max(1 << 20)
        .log_preallocation_bytes(4096)
}

/// Builds (once) a database with one segment and a log holding later writes.
fn baseline() -> &'static Baseline {
    static BASELINE: OnceLock<Baseline> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let io = SimIo::new();
        let db = Db::open_with_io(DB_DIR, db_options(), Arc::new(io.clone()))
            .expect("open the baseline database");
        // Fixed versions, so that the baseline's segment and manifest are the same every run.
        let write = |version: u64, puts: &[(&[u8], &[u8])], deletes: &[&[u8]]| {
            let mut batch = db.batch();
            for (key, value) in puts {
                batch.put(key, value);
            }
            for key in deletes {
                batch.delete(key);
            }
            batch.commit_at(Version::new(version)).expect("write to the baseline database");
        };
        write(10, &[(b"k1", b"v1")], &[]);
        write(20, &[(b"k2", b"v2")], &[]);
        db.flush().expect("flush");
        write(30, &[], &[b"k1"]);
        write(40, &[(b"k3", b"v3")], &[b"k2"]);
        db.close().expect("close");
        drop(db);
        let mut logs: Vec<String> = io
            .list_dir(Path::new(DB_DIR))
            .expect("list the baseline directory")
            .into_iter()
            .filter(|name| Path::new(name).extension().is_some_and(|ext| ext == "log"))
            .collect();
        logs.sort();
        let log_name = logs.pop().expect("the baseline database has a log");
        Baseline { io, log_name }
    })
}

/// Replaces the file at `path` on `io` with `bytes`, synced.
fn replace_file(io: &SimIo, path: &Path, bytes: &[u8]) {
    let _ = io.remove_file(path);
    let file = io.create_new(path).expect("create a file on the simulated disk");
    file.write_all_at(bytes, 0).expect("write on the simulated disk");
    file.sync_data().expect("sync on the simulated disk");
    io.sync_dir(Path::new(DB_DIR)).expect("sync the simulated directory");
}

/// Bytes of the manifest's header (magic, format version, body length) and its checksum.
const MANIFEST_HEADER_LEN: usize = 16;
const MANIFEST_CHECKSUM_LEN: usize = 8;

/// Target `manifest_decode`: the manifest decoder over arbitrary bytes, directly and as the
/// `MANIFEST` of the `db_open` baseline database. A manifest that decodes re-encodes to exactly
/// its bytes; a database with it opens or returns an error, and once open answers reads and
/// closes without panicking. Runs twice: on the bytes, and with the body length and checksum
/// recomputed ([`manifest_with_checksum_fixed`]), so that mutations reach the body decoder and
/// the code that trusts a decoded manifest.
pub fn check_manifest(data: &[u8]) {
    check_manifest_bytes(data);
    let fixed = manifest_with_checksum_fixed(data);
    check_manifest_bytes(&fixed);
    check_db_with_file(true, &fixed);
}

/// `data` with the manifest's body length field and trailing checksum made to match its
/// length and bytes; shorter than a header and a checksum, unchanged.
#[must_use]
pub fn manifest_with_checksum_fixed(data: &[u8]) -> Vec<u8> {
    use zverse_core::checksum::checksum;
    let mut bytes = data.to_vec();
    let Some(checked_len) = bytes.len().checked_sub(MANIFEST_CHECKSUM_LEN) else { return bytes };
    let Some(body_len) = checked_len.checked_sub(MANIFEST_HEADER_LEN) else { return bytes };
    let body_len = u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes();
    bytes[MANIFEST_HEADER_LEN - 4..MANIFEST_HEADER_LEN].copy_from_slice(&body_len);
    let sum = checksum(&bytes[..checked_len]).to_le_bytes();
    bytes[checked_len..].copy_from_slice(&sum);
    bytes
}

fn check_manifest_bytes(data: &[u8]) {
    let Ok(manifest) = Manifest::decode_from(data) else { return };
    let encoded = manifest.encode();
    if zverse_core::manifest::format_version_of(data) == Some(FORMAT_VERSION) {
        assert_eq!(encoded, data, "a decoded manifest re-encodes to its bytes");
    } else {
        // Format 2 (no tiers) is written back as the current format, with the same content.
        assert_eq!(Manifest::decode_from(&encoded), Ok(manifest), "format 2 re-encodes");
    }
}

/// The seed inputs of target `manifest_decode`: the manifests of the `db_open` baseline
/// database (one segment) and of a new, empty database.
#[must_use]
pub fn seeds_manifest() -> Vec<Vec<u8>> {
    let baseline = baseline();
    let manifest_path = Path::new(DB_DIR).join("MANIFEST");
    let with_segment = baseline.io.read_file(&manifest_path).expect("a manifest");
    let io = SimIo::new();
    let db = Db::open_with_io(DB_DIR, db_options(), Arc::new(io.clone())).expect("a new database");
    db.close().expect("close the new database");
    let empty = io.read_file(&manifest_path).expect("a new database's manifest");
    vec![with_segment, empty]
}

/// The seed inputs of target `record_decode`: a put, a delete, batches, and a log of them.
#[must_use]
pub fn seeds_record() -> Vec<Vec<u8>> {
    let version = Version::new(0x0102_0304_0506_0708);
    let mut put = vec![0; 64];
    let len = encode_put_into(&mut put, version, b"key", b"value").expect("encode a put");
    put.truncate(len);
    let mut delete = vec![0; 64];
    let len = encode_delete_into(&mut delete, version, b"gone").expect("encode a delete");
    delete.truncate(len);
    let mut batch = BatchBuilder::new();
    batch.put(b"a", b"1").expect("put");
    batch.delete(b"b").expect("delete");
    batch.put(b"", b"").expect("put");
    let batch = batch.finish(version);
    let empty_batch = BatchBuilder::new().finish(Version::new(1));
    let log = [&put[..], &delete, &batch, &empty_batch, &[0; 16]].concat();
    vec![put, delete, batch, empty_batch, log]
}

/// The seed inputs of target `segment_open`: an empty segment, a small one, and one of several
/// small blocks with tombstones and keys sharing their first 8 bytes; then the small one and
/// the one of several blocks again in key order ([`Order::Key`]), with block restarts every
/// 16 entries (the default), every entry, and none (the older format, version 2).
#[must_use]
pub fn seeds_segment() -> Vec<Vec<u8>> {
    let small: Vec<SeedEntry<'_>> =
        vec![(b"a", 1, Some(b"x")), (b"b", 2, None), (b"c", 3, Some(b"yy"))];
    let mut many = Vec::new();
    let keys: [&[u8]; 5] = [b"", b"key", b"prefix:0001", b"prefix:0002", b"zz"];
    for (index, key) in keys.iter().enumerate() {
        for version in 1..=4_u64 {
            let value: Option<&[u8]> = if version == 3 { None } else { Some(b"value") };
            many.push((*key, version * 10 + index as u64, value));
        }
    }
    vec![
        build_segment(Vec::new(), 4096, Order::Z),
        build_segment(small.clone(), 4096, Order::Z),
        build_segment(many.clone(), 64, Order::Z),
        build_segment(small, 4096, Order::Key),
        build_segment(many.clone(), 64, Order::Key),
        build_segment_with(many.clone(), 64, Order::Key, 1),
        build_segment_with(many, 64, Order::Key, 0),
    ]
}

/// A seed segment's entry: key, version, value (`None`: a tombstone).
type SeedEntry<'a> = (&'a [u8], u64, Option<&'a [u8]>);

/// A segment of `entries` (sorted here into `order`) with blocks of about `block_bytes`.
fn build_segment(entries: Vec<SeedEntry<'_>>, block_bytes: usize, order: Order) -> Vec<u8> {
    let interval = zverse_core::segment::RESTART_INTERVAL_DEFAULT;
    build_segment_with(entries, block_bytes, order, interval)
}

/// [`build_segment`] with a block restart every `restart_interval` entries in key order (0:
/// none, the older format).
fn build_segment_with(
    mut entries: Vec<SeedEntry<'_>>,
    block_bytes: usize,
    order: Order,
    restart_interval: usize,
) -> Vec<u8> {
    if order == Order::Key {
        entries.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
    } else {
        entries.sort_by(|a, b| {
            let z =
                |entry: &(&[u8], u64, _)| zverse_core::zkey::morton(entry.0, Version::new(entry.1));
            z(a).cmp(&z(b)).then(a.0.cmp(b.0))
        });
    }
    let options = SegmentOptions::default()
        .with_block_bytes_target(block_bytes)
        .with_order(order)
        .with_restart_interval(restart_interval);
    let mut builder = SegmentBuilder::new(Vec::new(), options);
    for (key, version, value) in entries {
        builder.add(key, Version::new(version), value).expect("add to the seed segment");
    }
    let (bytes, _) = builder.finish().expect("finish the seed segment");
    bytes
}
