//! The `Io` contract, checked on every backend the same way, and the crash behaviour of the
//! simulated disk the crash tests rely on.

use std::io::ErrorKind;
use std::path::Path;

use zverse::io::{Io, StdIo};
use zverse_tests::sim_io::{CrashVariant, SECTOR_BYTES, SimIo};

/// Runs the contract checks against `io` inside the existing directory `dir`.
fn check_contract(io: &dyn Io, dir: &Path) {
    let path = dir.join("a.log");
    let file = io.create_new(&path).unwrap();
    assert_eq!(io.create_new(&path).unwrap_err().kind(), ErrorKind::AlreadyExists);
    file.write_all_at(b"hello", 0).unwrap();
    file.write_all_at_and_sync(&[b", ", b"world"], 5).unwrap();
    assert_eq!(file.len_bytes().unwrap(), 12);
    let mut buf = [0u8; 12];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"hello, world");
    assert_eq!(file.read_exact_at(&mut [0u8; 2], 11).unwrap_err().kind(), ErrorKind::UnexpectedEof);

    // Writing past the end fills the gap with zeros; set_len truncates.
    file.write_all_at(b"!", 14).unwrap();
    let mut gap = [9u8; 3];
    file.read_exact_at(&mut gap, 12).unwrap();
    assert_eq!(gap, [0, 0, b'!']);
    file.set_len(5).unwrap();
    assert_eq!(file.len_bytes().unwrap(), 5);
    file.sync_data().unwrap();

    let reader = io.open_read(&path).unwrap();
    assert_eq!(reader.map().unwrap().bytes(), b"hello");
    assert!(reader.write_all_at(b"x", 0).is_err(), "a read-only file refuses writes");

    let renamed = dir.join("b.log");
    io.rename(&path, &renamed).unwrap();
    io.sync_dir(dir).unwrap();
    assert_eq!(io.open_read(&path).unwrap_err().kind(), ErrorKind::NotFound);
    let mut names = io.list_dir(dir).unwrap();
    names.retain(|name| name != "LOCK");
    assert_eq!(names, ["b.log"]);
    io.remove_file(&renamed).unwrap();
    assert_eq!(io.open_read_write(&renamed).unwrap_err().kind(), ErrorKind::NotFound);

    let lock_path = dir.join("LOCK");
    let lock = io.try_lock(&lock_path).unwrap().expect("the first lock is granted");
    assert!(io.try_lock(&lock_path).unwrap().is_none(), "a second lock is refused");
    drop(lock);
    assert!(io.try_lock(&lock_path).unwrap().is_some(), "a released lock can be taken again");
}

#[test]
fn std_io_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    check_contract(&StdIo, dir.path());
}

#[cfg(target_os = "linux")]
#[test]
fn uring_io_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    match zverse_linux::UringIo::new() {
        Ok(io) => check_contract(&io, dir.path()),
        // Not a silent pass: the sandbox's refusal is printed, and the fallback is tested in
        // runtime-linux/tests/uring.rs.
        Err(error) => eprintln!("io_uring refused by this kernel ({error}); UringIo not checked"),
    }
}

#[test]
fn sim_io_keeps_the_contract() {
    let io = SimIo::new();
    io.create_dir_all(Path::new("/db")).unwrap();
    check_contract(&io, Path::new("/db"));
}

/// A disk with one synced file holding `synced`, then `unsynced` appended without a sync.
fn disk_with_unsynced_tail(synced: &[u8], unsynced: &[u8]) -> SimIo {
    let io = SimIo::new();
    io.create_dir_all(Path::new("/db")).unwrap();
    let file = io.create_new(Path::new("/db/0.log")).unwrap();
    file.write_all_at_and_sync(&[synced], 0).unwrap();
    io.sync_dir(Path::new("/db")).unwrap();
    file.write_all_at(unsynced, synced.len() as u64).unwrap();
    io
}

#[test]
fn synced_bytes_survive_every_crash_variant() {
    let synced = vec![1u8; 3 * SECTOR_BYTES as usize + 17];
    let unsynced = vec![2u8; 4 * SECTOR_BYTES as usize];
    let io = disk_with_unsynced_tail(&synced, &unsynced);
    for seed in 0..20 {
        let variants = [
            CrashVariant::LoseUnsynced,
            CrashVariant::KeepUnsynced,
            CrashVariant::RandomSectors { seed },
            CrashVariant::TornLastWrite { seed },
        ];
        for variant in variants {
            let content = io.after_crash(variant).read_file(Path::new("/db/0.log")).unwrap();
            assert_eq!(&content[..synced.len()], &synced[..], "{variant:?}");
        }
    }
}

#[test]
fn unsynced_bytes_are_lost_kept_or_torn_as_the_variant_says() {
    let synced = b"synced".to_vec();
    let unsynced = vec![7u8; 2 * SECTOR_BYTES as usize];
    let io = disk_with_unsynced_tail(&synced, &unsynced);
    let path = Path::new("/db/0.log");
    assert_eq!(io.after_crash(CrashVariant::LoseUnsynced).read_file(path).unwrap(), synced);
    let kept = io.after_crash(CrashVariant::KeepUnsynced).read_file(path).unwrap();
    assert_eq!(kept, [synced.clone(), unsynced.clone()].concat());

    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let torn = io.after_crash(CrashVariant::TornLastWrite { seed }).read_file(path).unwrap();
        assert!(torn.len() <= kept.len() && torn.starts_with(&synced), "seed {seed}");
        outcomes.insert(torn.len());
        let random = io.after_crash(CrashVariant::RandomSectors { seed }).read_file(path).unwrap();
        assert!(random.starts_with(&synced), "seed {seed}");
        outcomes.insert(random.len() + 10_000);
    }
    assert!(outcomes.len() >= 4, "the variants must produce different disks: {outcomes:?}");
}

#[test]
fn unsynced_directory_entries_are_lost_or_kept_as_the_variant_says() {
    let io = SimIo::new();
    let dir = Path::new("/db");
    io.create_dir_all(dir).unwrap();
    let old = io.create_new(&dir.join("MANIFEST")).unwrap();
    old.write_all_at_and_sync(&[b"old"], 0).unwrap();
    io.sync_dir(dir).unwrap();
    let new = io.create_new(&dir.join("MANIFEST.tmp")).unwrap();
    new.write_all_at_and_sync(&[b"new"], 0).unwrap();
    io.rename(&dir.join("MANIFEST.tmp"), &dir.join("MANIFEST")).unwrap();

    let lost = io.after_crash(CrashVariant::LoseUnsynced);
    assert_eq!(lost.read_file(&dir.join("MANIFEST")).unwrap(), b"old");
    assert!(lost.read_file(&dir.join("MANIFEST.tmp")).is_none(), "its creation was not synced");
    let kept = io.after_crash(CrashVariant::KeepUnsynced);
    assert_eq!(kept.read_file(&dir.join("MANIFEST")).unwrap(), b"new");
    assert!(kept.read_file(&dir.join("MANIFEST.tmp")).is_none());
}

#[test]
fn the_power_fails_at_the_scheduled_call_and_stays_off() {
    let io = SimIo::new();
    io.create_dir_all(Path::new("/db")).unwrap();
    let file = io.create_new(Path::new("/db/0.log")).unwrap();
    let first = io.call_count();
    io.crash_at(first + 1);
    file.write_all_at(b"a", 0).unwrap();
    assert!(file.write_all_at(b"b", 1).is_err());
    assert!(file.sync_data().is_err(), "every call after the crash fails");
    assert!(io.has_crashed());
    let restarted = io.after_crash(CrashVariant::KeepUnsynced);
    assert_eq!(restarted.read_file(Path::new("/db/0.log")).unwrap(), b"a");
    assert!(!restarted.has_crashed());
}
