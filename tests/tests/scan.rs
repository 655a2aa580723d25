//! `Db::scan`, the cursor that lends its keys and values: it reads what the model and
//! `Db::range` read, forwards, backwards and from both ends, at the latest version and as of
//! older ones, with deletes, across memtables, level 0, the levels and history; and a corrupt
//! block gives a typed error.

use std::ops::Bound;

use zverse::{Db, Durability, Error, Options, Version};
use zverse_tests::backend;
use zverse_tests::oracle::{KeySlices, Oracle};
use zverse_tests::tiny_tiers_options as options;

/// The seed: `ZVERSE_SEED` if set, else the clock; printed so that a failure can be replayed.
fn seed() -> u64 {
    let seed = std::env::var("ZVERSE_SEED").ok().and_then(|text| text.parse().ok());
    let seed = seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        u64::from(now.subsec_nanos())
    });
    eprintln!("scan: ZVERSE_SEED={seed}");
    seed
}

/// Keys of several lengths (an empty one, shorter and longer than the 8-byte prefix), some
/// sharing their first 8 bytes.
fn key(index: usize) -> Vec<u8> {
    match index % 4 {
        0 => format!("k{index}").into_bytes(),
        1 => format!("shared:prefix:{index:04}").into_bytes(),
        2 => vec![u8::try_from(index % 251).unwrap(); index % 11],
        _ => format!("{index:06}").into_bytes(),
    }
}

const KEY_COUNT: usize = 120;

/// Writes `count` random puts and deletes (batches of 1 to 4), recording them in `model`.
fn write_some(db: &Db, model: &mut Oracle, rng: &mut fastrand::Rng, count: usize) -> Version {
    let mut last = Version::ZERO;
    for _ in 0..count {
        let mut batch = db.batch();
        let mut writes = Vec::new();
        for _ in 0..rng.usize(1..=4) {
            let key = key(rng.usize(..KEY_COUNT));
            let value = (!rng.u8(..).is_multiple_of(4))
                .then(|| format!("v{}", rng.u32(..)).repeat(rng.usize(1..4)).into_bytes());
            match &value {
                Some(value) => batch.put(&key, value),
                None => batch.delete(&key),
            };
            writes.push((key, value));
        }
        last = batch.commit().unwrap();
        model.write(last, writes.iter().map(|(key, value)| (key, value)));
    }
    last
}

/// A random key range over the key space (each end unbounded, included or excluded).
fn random_range(rng: &mut fastrand::Rng) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let bound = |rng: &mut fastrand::Rng| match rng.u8(..3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(key(rng.usize(..KEY_COUNT))),
        _ => Bound::Excluded(key(rng.usize(..KEY_COUNT))),
    };
    (bound(rng), bound(rng))
}

fn slices(range: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> KeySlices<'_> {
    (range.0.as_ref().map(|k| &k[..]), range.1.as_ref().map(|k| &k[..]))
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The scan read forwards, backwards, and from both ends alternately (`pattern` picks the end
/// of each step), each as pairs in key order.
fn read_scan(db: &Db, keys: KeySlices<'_>, version: Version, pattern: u64) -> [Pairs; 3] {
    let own = |(key, value): (&[u8], &[u8])| (key.to_vec(), value.to_vec());
    let mut forward = Vec::new();
    let mut scan = db.scan_at(keys, version).unwrap();
    while let Some(item) = scan.next() {
        forward.push(own(item.unwrap()));
    }
    let mut backward = Vec::new();
    let mut scan = db.scan_at(keys, version).unwrap();
    while let Some(item) = scan.next_back() {
        backward.push(own(item.unwrap()));
    }
    backward.reverse();
    let (mut front, mut back) = (Vec::new(), Vec::new());
    let mut scan = db.scan_at(keys, version).unwrap();
    for step in 0.. {
        let item = if pattern >> (step % 64) & 1 == 0 {
            scan.next().map(|item| front.push(own(item.unwrap())))
        } else {
            scan.next_back().map(|item| back.push(own(item.unwrap())))
        };
        if item.is_none() {
            break;
        }
    }
    back.reverse();
    front.extend(back);
    [forward, backward, front]
}

/// Checks random ranges at the latest version and at versions from `versions` against the
/// model and against `Db::range`.
fn check(db: &Db, model: &Oracle, versions: &[Version], rng: &mut fastrand::Rng, stage: &str) {
    for _ in 0..40 {
        let range = random_range(rng);
        let version = match rng.usize(..=versions.len()) {
            0 => Version::MAX,
            index => versions[index - 1],
        };
        let keys = slices(&range);
        let expected = model.range_at(keys, version);
        let owned: Pairs = db
            .range_at(keys, version)
            .unwrap()
            .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap())
            .collect();
        assert_eq!(owned, expected, "{stage}: range {range:?} at {version:?}");
        let [forward, backward, both] = read_scan(db, keys, version, rng.u64(..));
        assert_eq!(forward, expected, "{stage}: forward scan {range:?} at {version:?}");
        assert_eq!(backward, expected, "{stage}: backward scan {range:?} at {version:?}");
        assert_eq!(both, expected, "{stage}: scan from both ends {range:?} at {version:?}");
    }
}

#[test]
fn scans_read_what_the_model_and_range_read_across_every_tier() {
    let mut rng = fastrand::Rng::with_seed(seed());
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let mut model = Oracle::default();
    let mut versions = Vec::new();
    for round in 0..6 {
        versions.push(write_some(&db, &mut model, &mut rng, 150));
        check(&db, &model, &versions, &mut rng, &format!("round {round}, memtables"));
        db.flush().unwrap();
        versions.push(write_some(&db, &mut model, &mut rng, 40));
        check(&db, &model, &versions, &mut rng, &format!("round {round}, level 0"));
        if round % 2 == 1 {
            db.compact().unwrap();
            check(&db, &model, &versions, &mut rng, &format!("round {round}, compacted"));
        }
    }
    let stats = db.stats();
    assert!(stats.history_segment_count >= 1, "history was read: {stats:?}");
    assert!(!stats.level_segment_counts.is_empty(), "levels were read: {stats:?}");
}

/// One level and nothing else (the memtables flushed, every segment compacted into one level,
/// several segments of it), or one level-0 segment alone: the scan reads that one source
/// without a merge, and a step back from the end switches to both ends' merges.
#[test]
fn scans_of_one_source_read_what_the_model_reads() {
    let mut rng = fastrand::Rng::with_seed(seed());
    let dir = tempfile::tempdir().unwrap();
    let options = options().level_base_bytes(1 << 30).compaction_trigger_segments(64);
    let db = backend::open(dir.path(), options).unwrap();
    let mut model = Oracle::default();
    let mut versions = vec![write_some(&db, &mut model, &mut rng, 30)];
    db.flush().unwrap();
    assert_eq!(db.stats().segment_count_open, 1, "{:?}", db.stats());
    check(&db, &model, &versions, &mut rng, "one level-0 segment");
    for round in 0..4 {
        versions.push(write_some(&db, &mut model, &mut rng, 150));
        db.flush().unwrap();
        db.compact().unwrap();
        let stats = db.stats();
        let levels: Vec<usize> =
            stats.level_segment_counts.iter().copied().filter(|&count| count > 0).collect();
        assert!(levels.len() == 1 && levels[0] >= 2, "one level, several segments: {stats:?}");
        check(&db, &model, &versions, &mut rng, &format!("round {round}, one level"));
    }
}

#[test]
fn for_each_visits_what_next_yields() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    for index in 0..500_u32 {
        db.put(&index.to_be_bytes(), &index.to_le_bytes()).unwrap();
    }
    db.delete(&7_u32.to_be_bytes()).unwrap();
    db.flush().unwrap();
    let mut visited = Vec::new();
    let visit = |key: &[u8], value: &[u8]| visited.push((key.to_vec(), value.to_vec()));
    db.scan(..).unwrap().for_each(visit).unwrap();
    let expected: Pairs = (0..500_u32)
        .filter(|&index| index != 7)
        .map(|index| (index.to_be_bytes().to_vec(), index.to_le_bytes().to_vec()))
        .collect();
    assert_eq!(visited, expected);
}

/// Flips one byte a third of the way into every segment file in `dir`: a data block in the
/// middle of the key range (the data blocks take most of a segment).
fn damage_middle_blocks(dir: &std::path::Path) -> usize {
    let mut damaged = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "seg") {
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 3;
            bytes[middle] ^= 0x40;
            std::fs::write(&path, bytes).unwrap();
            damaged += 1;
        }
    }
    damaged
}

#[test]
fn a_corrupt_block_ends_a_scan_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().durability(Durability::None).segment_block_bytes(512);
    {
        let db = backend::open(dir.path(), options.clone()).unwrap();
        for index in 0..2_000_u32 {
            db.put(&index.to_be_bytes(), &[7; 40]).unwrap();
        }
        db.compact().unwrap();
        db.close().unwrap();
    }
    assert!(damage_middle_blocks(dir.path()) >= 1, "a segment to damage");
    let db = backend::open(dir.path(), options).unwrap();
    for reverse in [false, true] {
        let mut scan = db.scan(..).unwrap();
        let mut read = 0;
        let error = loop {
            let item = if reverse { scan.next_back() } else { scan.next() };
            match item.expect("the scan reaches the damaged block before its end") {
                Ok(_) => read += 1,
                Err(error) => break error,
            }
        };
        assert!(matches!(error, Error::Corruption { .. }), "{error:?}");
        assert!(scan.next().is_none() && scan.next_back().is_none(), "nothing after the error");
        assert!(read < 2_000, "the damaged block's items are not read: {read}");
    }
}
