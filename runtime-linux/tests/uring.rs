//! `zverse_linux::open` on io_uring and its fallback: the engine end to end on `UringIo`
//! with synced group commits from several writers, the probe forced to fail (Auto falls back
//! to std, Uring fails clearly), and the portable backend on request.
//!
//! Where the kernel refuses io_uring, the io_uring cases assert the fallback instead and say
//! so on stderr; they never pass silently.

use std::io;
use std::sync::Arc;

use zverse::{Db, Durability, Error, Options};
use zverse_linux::{Backend, select_io_with};

const WRITERS: u32 = 4;
const KEYS_PER_WRITER: u32 = 150;

fn options() -> Options {
    Options::default().durability(Durability::Sync).memtable_bytes_max(16 << 10)
}

/// Whether this kernel runs io_uring; says so on stderr when it does not.
fn uring_available() -> bool {
    match zverse_linux::probe() {
        Ok(_) => true,
        Err(error) => {
            eprintln!("io_uring refused here ({error}): asserting the std fallback instead");
            false
        }
    }
}

fn key(writer: u32, index: u32) -> Vec<u8> {
    format!("w{writer}:{index:05}").into_bytes()
}

/// Four writers put and overwrite keys with synced commits, flushing along the way.
fn write_from_threads(db: &Db) {
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            scope.spawn(move || {
                for index in 0..KEYS_PER_WRITER {
                    db.put(&key(writer, index), format!("first-{index}").as_bytes()).unwrap();
                    if index.is_multiple_of(3) {
                        db.put(&key(writer, index), format!("second-{index}").as_bytes()).unwrap();
                    }
                }
            });
        }
    });
}

fn expected_value(index: u32) -> String {
    if index.is_multiple_of(3) { format!("second-{index}") } else { format!("first-{index}") }
}

fn check_contents(db: &Db) {
    for writer in 0..WRITERS {
        for index in (0..KEYS_PER_WRITER).step_by(7) {
            let value = db.get(&key(writer, index)).unwrap().expect("every key was written");
            assert_eq!(&*value, expected_value(index).as_bytes(), "w{writer}:{index}");
        }
    }
    let history: Vec<_> = db.history(&key(2, 3)).unwrap().map(Result::unwrap).collect();
    assert_eq!(history.len(), 2, "key w2:00003 was written twice");
    assert!(history[0].0 > history[1].0, "newest first");
    assert_eq!(history[1].1.as_deref(), Some(&b"first-3"[..]));
    let changes = db.changes(b"w1:".as_slice()..b"w2:".as_slice(), ..).unwrap();
    let changes: Vec<_> = changes.map(Result::unwrap).collect();
    assert_eq!(changes.len() as u32, KEYS_PER_WRITER + KEYS_PER_WRITER.div_ceil(3));
    assert!(changes.iter().all(|change| change.key.starts_with(b"w1:")));
}

#[test]
fn the_engine_runs_end_to_end_on_io_uring_with_synced_commits() {
    let available = uring_available();
    let dir = tempfile::tempdir().unwrap();
    let opened = zverse_linux::open_with(dir.path(), options(), Backend::Uring);
    if !available {
        assert!(matches!(opened, Err(Error::Io(_))), "Uring must fail where io_uring is refused");
        return;
    }
    {
        let db = opened.unwrap();
        assert_eq!(db.stats().io_backend, "io_uring");
        write_from_threads(&db);
        db.flush().unwrap();
        db.put(b"after-flush", b"in the log only").unwrap();
        check_contents(&db);
        db.close().unwrap();
    }
    let db = zverse_linux::open(dir.path(), options()).unwrap();
    assert_eq!(db.stats().io_backend, "io_uring");
    check_contents(&db);
    assert_eq!(db.get(b"after-flush").unwrap().as_deref(), Some(&b"in the log only"[..]));
    assert!(db.check().unwrap().segment_count >= 1, "every block of every segment verifies");
}

fn refused() -> io::Result<Arc<dyn zverse::io::Io>> {
    Err(io::Error::from_raw_os_error(38)) // ENOSYS, as an old kernel answers io_uring_setup.
}

#[test]
fn auto_falls_back_to_std_when_the_probe_fails() {
    let io = select_io_with(Backend::Auto, refused).unwrap();
    assert_eq!(io.name(), "std");
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with_io(dir.path(), options(), io).unwrap();
    assert_eq!(db.stats().io_backend, "std");
    write_from_threads(&db);
    check_contents(&db);
}

#[test]
fn uring_fails_clearly_when_the_probe_fails() {
    let Err(Error::Io(error)) = select_io_with(Backend::Uring, refused) else {
        panic!("Backend::Uring must fail when io_uring is unavailable");
    };
    assert_eq!(error.raw_os_error(), None, "the error wraps the probe's with a message");
    let message = error.to_string();
    assert!(message.contains("io_uring is unavailable"), "{message}");
}

#[test]
fn auto_runs_on_io_uring_where_the_kernel_allows_it_and_portable_on_std() {
    let expected = if uring_available() { "io_uring" } else { "std" };
    let dir = tempfile::tempdir().unwrap();
    let db = zverse_linux::open(dir.path(), options()).unwrap();
    assert_eq!(db.stats().io_backend, expected);
    db.close().unwrap();
    drop(db);
    let db = zverse_linux::open_with(dir.path(), options(), Backend::Portable).unwrap();
    assert_eq!(db.stats().io_backend, "std");
}

/// Group commits of a few parts (linked in one submission), of more parts than one window
/// holds (several windows), with empty parts, and one that fails; a 3 MiB synced write and a
/// 5 MiB unsynced one (1 MiB chunks in flight together): the bytes land in order, the error is
/// the kernel's, and the ring still works afterwards (nothing was left in flight).
#[cfg(target_os = "linux")]
#[test]
fn uring_group_commits_land_in_order_and_a_failed_one_leaves_the_ring_usable() {
    use zverse::io::Io;
    if !uring_available() {
        return;
    }
    let io = zverse_linux::UringIo::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let file = io.create_new(&path).unwrap();
    let parts: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; usize::from(i) * 1_000]).collect();
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let concat = |parts: &[&[u8]]| parts.concat();
    file.write_all_at_and_sync(&parts[..3], 0).unwrap();
    let mut read = vec![0; concat(&parts[..3]).len()];
    file.read_exact_at(&mut read, 0).unwrap();
    assert_eq!(read, concat(&parts[..3]));
    file.write_all_at_and_sync(&parts, 0).unwrap();
    let mut read = vec![0; concat(&parts).len()];
    file.read_exact_at(&mut read, 0).unwrap();
    assert_eq!(read, concat(&parts));

    let reader = io.open_read(&path).unwrap();
    let error = reader.write_all_at_and_sync(&[b"x", b"y"], 0).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(9), "EBADF: the file is open for reading: {error}");
    file.write_all_at_and_sync(&[b"after", b" a failure"], 0).unwrap();
    let mut read = [0; 15];
    reader.read_exact_at(&mut read, 0).unwrap();
    assert_eq!(&read, b"after a failure");
    let big = vec![0xAB; 3 << 20];
    file.write_all_at_and_sync(&[&big], 1 << 20).unwrap();
    let mut read = vec![0; big.len()];
    reader.read_exact_at(&mut read, 1 << 20).unwrap();
    assert!(read == big, "a 3 MiB write reads back");
    let big: Vec<u8> = (0..5 << 20).map(|i: u32| (i / 4096) as u8).collect();
    file.write_all_at(&big, 12_345).unwrap();
    file.sync_data().unwrap();
    let mut read = vec![0; big.len()];
    reader.read_exact_at(&mut read, 12_345).unwrap();
    assert!(read == big, "a 5 MiB unsynced write reads back");
}

/// A database's open measures the ring against system calls on its file system, routes each
/// class of operation the faster way, and says which in `stats()`; pinned routes stay.
#[cfg(target_os = "linux")]
#[test]
fn the_open_routes_each_operation_as_measured_and_stats_say_how() {
    use zverse_linux::route::Routes;
    if !uring_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let io = zverse_linux::UringIo::new().unwrap();
    let probe = io.measure(dir.path(), true).unwrap();
    println!("probe on this file system: {probe:?} -> {:?}", probe.routes());
    assert_eq!(io.routes(), Routes::RING, "measuring changes nothing");
    let db = Db::open_with_io(dir.path(), options(), Arc::new(io.clone())).unwrap();
    let stats = db.stats();
    assert_eq!(stats.io_backend, "io_uring");
    assert_eq!(stats.io_routing, io.routes().describe());
    assert!(stats.io_routing.starts_with("log writes: "), "{}", stats.io_routing);
    drop(db);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let engine_file = |name: &String| {
        let extension = std::path::Path::new(name).extension();
        ["LOCK", "MANIFEST"].contains(&name.as_str())
            || extension.is_some_and(|extension| extension == "log" || extension == "seg")
    };
    assert!(names.iter().all(engine_file), "the probe leaves no file: {names:?}");
    for routes in [Routes::RING, Routes::SYSCALLS] {
        let dir = tempfile::tempdir().unwrap();
        let io = Arc::new(zverse_linux::UringIo::with_routes(routes).unwrap());
        let db = Db::open_with_io(dir.path(), options(), io).unwrap();
        assert_eq!(db.stats().io_routing, routes.describe(), "pinned routes stay");
        write_from_threads(&db);
        db.flush().unwrap();
        check_contents(&db);
        drop(db);
        let io = Arc::new(zverse_linux::UringIo::with_routes(routes).unwrap());
        check_contents(&Db::open_with_io(dir.path(), options(), io).unwrap());
    }
}
