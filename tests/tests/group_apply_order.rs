//! Batches and commit groups read back exactly as written in commit order: a batch in reverse
//! key order with repeated keys (the later write wins), and many writers whose groups share
//! keys across versions. Guards any change to how the leader applies a group to the memtable
//! (an insert sorted by key, for one, was tried and measured in issue 13).

use std::collections::BTreeMap;

use zverse::{Durability, Options, Version};
use zverse_tests::backend;

fn options() -> Options {
    Options::default().durability(Durability::None)
}

#[test]
fn a_batch_in_reverse_key_order_with_repeats_reads_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = backend::open(dir.path(), options()).unwrap();
    let mut batch = db.batch();
    for round in 0..3_u8 {
        for key in (0..200_u16).rev() {
            // Each key three times in one batch: the last write (round 2) wins.
            batch.put(&key.to_be_bytes(), &[round, key.to_be_bytes()[1]]);
        }
    }
    batch.delete(&7_u16.to_be_bytes());
    let version = batch.commit().unwrap();
    let items: Vec<(Vec<u8>, Vec<u8>)> = db
        .range(..)
        .unwrap()
        .map(|item| item.map(|(key, value)| (key.to_vec(), value.to_vec())).unwrap())
        .collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..200_u16)
        .filter(|key| *key != 7)
        .map(|key| (key.to_be_bytes().to_vec(), vec![2, key.to_be_bytes()[1]]))
        .collect();
    assert_eq!(items, expected);
    let history: Vec<_> = db.history(&3_u16.to_be_bytes()).unwrap().map(Result::unwrap).collect();
    assert_eq!(history.len(), 1, "one version per key per batch");
    assert_eq!(history[0].0, version);
    assert_eq!(db.get(&7_u16.to_be_bytes()).unwrap(), None);
}

#[test]
fn groups_of_many_writers_on_shared_keys_keep_every_version() {
    const WRITERS: u8 = 8;
    const WRITES_PER_WRITER: u16 = 100;
    const KEYS: u16 = 16;
    let dir = tempfile::tempdir().unwrap();
    // Sync: writers board each other's groups, so a group holds several writes.
    let db = backend::open(dir.path(), options().durability(Durability::Sync)).unwrap();
    let written: Vec<Vec<(u16, Version, Vec<u8>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let db = &db;
                scope.spawn(move || {
                    (0..WRITES_PER_WRITER)
                        .map(|index| {
                            let key = (index * 7 + u16::from(writer)) % KEYS;
                            let value = vec![writer, (index >> 8) as u8, index as u8];
                            let version = if index % 5 == 0 {
                                let mut batch = db.batch();
                                batch.put(&key.to_be_bytes(), &value);
                                batch.put(&(KEYS + key).to_be_bytes(), &value);
                                batch.commit().unwrap()
                            } else {
                                db.put(&key.to_be_bytes(), &value).unwrap()
                            };
                            (key, version, value)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    let stats = db.stats();
    assert!(stats.commit_groups < stats.commit_records, "some groups held several writes");
    let mut model: BTreeMap<u16, Vec<(Version, Vec<u8>)>> = BTreeMap::new();
    for (key, version, value) in written.into_iter().flatten() {
        model.entry(key).or_default().push((version, value));
    }
    for (key, mut versions) in model {
        versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        let history: Vec<(Version, Vec<u8>)> = db
            .history(&key.to_be_bytes())
            .unwrap()
            .map(|item| item.map(|(version, value)| (version, value.unwrap().to_vec())).unwrap())
            .collect();
        assert_eq!(history, versions, "key {key}");
        assert_eq!(db.get(&key.to_be_bytes()).unwrap().unwrap(), versions[0].1.as_slice());
    }
}
