//! `Durability::Periodic` and `Durability::None` never make a writer wait for a sync: with a
//! sync blocked inside the file system (a gate in a wrapper around the real backend), writes
//! still complete. (In `Sync` mode a writer waits for its sync by definition.)
//!
//! The one exception, by design: the log rotation that seals a full memtable's log syncs it
//! before the next log exists (recovery's rule that an older log ends with its seal), under
//! the commit leadership; these writes stay inside one memtable.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use zverse::io::{Io, IoFile, IoLock, Mapping};
use zverse::{Db, Durability, Options};

/// How long a write may take while a sync is blocked before the test calls it waiting.
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);

/// A gate that blocks `sync_data` of the files whose names end with `suffix` while closed.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    /// Syncs blocked at the gate now.
    blocked: usize,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).closed = closed;
        self.changed.notify_all();
    }

    /// Blocks while the gate is closed.
    fn pass(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.blocked += 1;
        self.changed.notify_all();
        while state.closed {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.blocked -= 1;
    }

    /// Waits until a sync is blocked at the gate.
    fn wait_for_blocked_sync(&self) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, WRITE_TIMEOUT, |state| state.blocked == 0)
            .unwrap_or_else(PoisonError::into_inner);
        assert!(!timeout.timed_out() && state.blocked > 0, "no sync reached the gate");
    }
}

/// The real backend of the test run, with `sync_data` of `suffix` files going through a gate.
#[derive(Debug)]
struct GatedIo {
    inner: Arc<dyn Io>,
    gate: Arc<Gate>,
    suffix: &'static str,
}

#[derive(Debug)]
struct GatedFile {
    inner: Box<dyn IoFile>,
    gate: Option<Arc<Gate>>,
}

impl GatedIo {
    fn wrap(&self, path: &Path, file: Box<dyn IoFile>) -> Box<dyn IoFile> {
        let gated = path.to_string_lossy().ends_with(self.suffix);
        Box::new(GatedFile { inner: file, gate: gated.then(|| Arc::clone(&self.gate)) })
    }
}

impl Io for GatedIo {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn try_lock(&self, path: &Path) -> std::io::Result<Option<IoLock>> {
        self.inner.try_lock(path)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn IoFile>> {
        Ok(self.wrap(path, self.inner.create_new(path)?))
    }
    fn open_read_write(&self, path: &Path) -> std::io::Result<Box<dyn IoFile>> {
        Ok(self.wrap(path, self.inner.open_read_write(path)?))
    }
    fn open_read(&self, path: &Path) -> std::io::Result<Box<dyn IoFile>> {
        Ok(self.wrap(path, self.inner.open_read(path)?))
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

impl IoFile for GatedFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(bytes, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.pass();
        }
        self.inner.sync_data()
    }
    fn len_bytes(&self) -> std::io::Result<u64> {
        self.inner.len_bytes()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn write_all_at_and_sync(&self, parts: &[&[u8]], offset: u64) -> std::io::Result<()> {
        let mut position = offset;
        for part in parts {
            self.inner.write_all_at(part, position)?;
            position += part.len() as u64;
        }
        self.sync_data()
    }
    fn map(&self) -> std::io::Result<Box<dyn Mapping>> {
        self.inner.map()
    }
}

fn open(dir: &Path, durability: Durability, suffix: &'static str) -> (Db, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let io = GatedIo { inner: zverse_tests::backend::io(), gate: Arc::clone(&gate), suffix };
    let db = Db::open_with_io(dir, Options::default().durability(durability), Arc::new(io))
        .expect("open");
    (db, gate)
}

/// Writes 100 keys from another thread; panics if they do not all complete in time.
fn writes_complete(db: &Arc<Db>, what: &str) {
    let (done, finished) = mpsc::channel();
    let writer = Arc::clone(db);
    std::thread::spawn(move || {
        for index in 0..100u32 {
            writer.put(format!("during-{index}").as_bytes(), b"value").expect("put");
        }
        let _ = done.send(());
    });
    assert!(
        finished.recv_timeout(WRITE_TIMEOUT).is_ok(),
        "{what}: writes waited for a blocked sync"
    );
}

/// The periodic syncer blocked in the log's fdatasync (before this change it held the log's
/// lock through the sync, so every leader's append waited for it).
#[test]
fn a_periodic_writer_never_waits_for_the_periodic_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (db, gate) = open(dir.path(), Durability::Periodic(Duration::from_millis(1)), ".log");
    let db = Arc::new(db);
    gate.set_closed(true);
    db.put(b"before", b"unsynced, so the periodic syncer has work").unwrap();
    gate.wait_for_blocked_sync();
    writes_complete(&db, "Periodic");
    gate.set_closed(false);
    assert_eq!(db.get(b"during-99").unwrap().as_deref(), Some(&b"value"[..]));
}

/// A flush blocked in its segment's fdatasync: `None` writers go on.
#[test]
fn a_none_writer_never_waits_for_a_flush_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (db, gate) = open(dir.path(), Durability::None, ".seg");
    let db = Arc::new(db);
    db.put(b"before", b"in the memtable the flush writes").unwrap();
    gate.set_closed(true);
    let flusher = Arc::clone(&db);
    let flush = std::thread::spawn(move || flusher.flush());
    gate.wait_for_blocked_sync();
    writes_complete(&db, "None");
    gate.set_closed(false);
    flush.join().unwrap().unwrap();
    assert_eq!(db.get(b"during-99").unwrap().as_deref(), Some(&b"value"[..]));
}
