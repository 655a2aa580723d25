//! Key-ordered segments with block restarts (segment format version 3, which the engine writes
//! for blocks over 4 KiB) through the engine: the files are version 3, and every point read and
//! range answers as the writes say, after compaction and after a reopen.

use std::collections::BTreeMap;
use std::path::Path;

use zverse::{Db, Durability, Options, Retention};

/// The segment footer's length and the offset of its format version (docs/format.md).
const FOOTER_LEN: usize = 152;
const FORMAT_VERSION_AT: usize = 8;

fn key(index: u32) -> Vec<u8> {
    format!("user:{index:08}").into_bytes()
}

fn options() -> Options {
    Options::default()
        .durability(Durability::None)
        .retention(Retention::All)
        .memtable_bytes_max(64 << 10)
        .segment_block_bytes(16 << 10)
        .segment_bytes_target(256 << 10)
}

/// The format versions of the current segments (`*.seg`) in `dir`.
fn segment_versions(dir: &Path) -> Vec<u32> {
    let mut versions = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "seg") {
            let bytes = std::fs::read(&path).unwrap();
            let at = bytes.len() - FOOTER_LEN + FORMAT_VERSION_AT;
            versions.push(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
        }
    }
    versions
}

/// Every key read alone and the whole range both ways match `model`.
fn check(db: &Db, model: &BTreeMap<Vec<u8>, Vec<u8>>, key_count: u32) {
    for index in 0..key_count + 10 {
        let got = db.get(&key(index)).unwrap().map(|value| value.to_vec());
        assert_eq!(got, model.get(&key(index)).cloned(), "key {index}");
    }
    let forward: Vec<(Vec<u8>, Vec<u8>)> = db
        .range(..)
        .unwrap()
        .map(|item| item.unwrap())
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(forward, expected);
    let backward: Vec<Vec<u8>> =
        db.range(..).unwrap().rev().map(|item| item.unwrap().0.to_vec()).collect();
    let expected_back: Vec<Vec<u8>> = model.keys().rev().cloned().collect();
    assert_eq!(backward, expected_back);
}

#[test]
fn blocks_over_4_kib_are_written_with_restarts_and_read_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let key_count = 6_000;
    let mut model = BTreeMap::new();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        for round in 0..2u32 {
            for index in (0..key_count).filter(|index| round == 0 || index % 3 == 0) {
                let value = format!("r{round}:{index}:{}", "v".repeat(40)).into_bytes();
                db.put(&key(index), &value).unwrap();
                model.insert(key(index), value);
            }
        }
        for index in (0..key_count).step_by(7) {
            db.delete(&key(index)).unwrap();
            model.remove(&key(index));
        }
        db.flush().unwrap();
        db.compact().unwrap();
        let versions = segment_versions(dir.path());
        assert!(!versions.is_empty() && versions.contains(&3), "versions {versions:?}");
        check(&db, &model, key_count);
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), options()).unwrap();
    check(&db, &model, key_count);
}
