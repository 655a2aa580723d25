//! Real kill -9: a child process (this test binary, re-executed with [`CHILD_ENV`] set) writes
//! with `Durability::Sync` from two threads while a third reads and the small memtable makes
//! flushes and compactions run; it prints every acknowledged write. The parent kills it
//! (SIGKILL) at a random moment, reopens the database and checks that every acknowledged write
//! is there at its version, every write from before the kill still is, and nothing else is but
//! whole writes still in flight at the kill (a batch's two keys together, at most one per
//! writer).
//!
//! CI runs [`KILL_COUNT_DEFAULT`] kills; `ZVERSE_KILL_COUNT` sets another count (the long run
//! is `scripts/kill-test`) and `ZVERSE_KILL_SEED` the seed, which is printed. The child inherits
//! `ZVERSE_TEST_BACKEND`, so it writes on the backend the run names (std or io_uring), and the
//! parent reopens on the same one.
//!
//! Unix only: it kills with SIGKILL and reads the signal from the exit status.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zverse::{Durability, Options, Version};
use zverse_tests::backend;

/// Set in the child's environment: the database directory it writes to.
const CHILD_ENV: &str = "ZVERSE_KILL_CHILD_DIR";
/// Set in the child's environment: the kill number, which prefixes every key it writes.
const CHILD_KILL_ENV: &str = "ZVERSE_KILL_CHILD_KILL";
/// Kills in a CI run.
const KILL_COUNT_DEFAULT: u64 = 50;
/// Kills against one database before the next starts fresh (the checks scan everything).
const KILLS_PER_DB: u64 = 50;
/// Writer threads in the child.
const WRITER_COUNT: usize = 2;
/// The child is killed this long (at most) after it reports the database open.
const KILL_DELAY_MAX: Duration = Duration::from_millis(150);
/// Bytes of padding in each value, so that the small memtable fills often.
const VALUE_PADDING_LEN: usize = 48;
/// The name of this test, which the child runs.
const TEST_NAME: &str = "kill_9_keeps_every_acknowledged_write";

#[test]
fn kill_9_keeps_every_acknowledged_write() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let kill: u64 = env_number(CHILD_KILL_ENV).expect("the child's kill number");
        child_main(Path::new(&dir), kill);
    }
    let kill_count = env_number("ZVERSE_KILL_COUNT").unwrap_or(KILL_COUNT_DEFAULT);
    let seed = env_number("ZVERSE_KILL_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "kill test: {kill_count} kills on the {} backend, seed {seed} (ZVERSE_KILL_SEED={seed} \
         repeats it)",
        backend::name()
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut dir = tempfile::tempdir().expect("a temporary directory");
    let mut model = Model::new();
    for kill in 0..kill_count {
        if kill > 0 && kill % KILLS_PER_DB == 0 {
            dir = tempfile::tempdir().expect("a temporary directory");
            model.clear();
        }
        let delay = KILL_DELAY_MAX.mul_f64(rng.f64());
        let acks = run_and_kill(dir.path(), kill, delay);
        let (found, segment_count) = verify(dir.path(), kill, &acks, &model)
            .unwrap_or_else(|error| panic!("seed {seed}, kill {kill}: {error}"));
        stats.segment_count_max = stats.segment_count_max.max(segment_count);
        stats.reopens_with_segments += u64::from(segment_count > 0);
        stats.acks += acks.len() as u64;
        stats.in_flight_found += (found.len() - model.len()) as u64 / 2 - acks.len() as u64;
        model = found;
    }
    eprintln!(
        "kill test: {kill_count} kills in {:.1} s, {} acknowledged writes checked, {} \
         unacknowledged writes found whole after a kill, {} reopens found segments (at most \
         {}) (seed {seed})",
        started.elapsed().as_secs_f64(),
        stats.acks,
        stats.in_flight_found,
        stats.reopens_with_segments,
        stats.segment_count_max,
    );
    assert!(stats.acks > 0, "the children acknowledged writes before they were killed");
    assert!(stats.reopens_with_segments > 0, "the children flushed memtables into segments");
}

#[derive(Default)]
struct Stats {
    acks: u64,
    in_flight_found: u64,
    /// The most segments a reopened database had: flushes ran, and compaction kept it small.
    segment_count_max: usize,
    reopens_with_segments: u64,
}

/// Every key in the database: its one version and its value.
type Model = BTreeMap<Vec<u8>, (Version, Vec<u8>)>;

/// One acknowledged write, as the child printed it.
#[derive(Clone, Copy, Debug)]
struct Ack {
    writer: usize,
    seq: u64,
    version: Version,
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

fn options() -> Options {
    Options::default()
        .durability(Durability::Sync)
        .memtable_bytes_max(8 << 10)
        .compaction_trigger_segments(2)
}

/// The key of half `half` (0 or 1) of write `seq` of `writer` in the child of kill `kill`.
fn key(kill: u64, writer: usize, seq: u64, half: u8) -> Vec<u8> {
    format!("{kill:06}/{writer}/{seq:08}/{half}").into_bytes()
}

/// The value written to `key`.
fn value(key: &[u8]) -> Vec<u8> {
    let mut value = b"value of ".to_vec();
    value.extend_from_slice(key);
    value.resize(value.len() + VALUE_PADDING_LEN, b'.');
    value
}

/// The child: writes until it is killed; never returns.
fn child_main(dir: &Path, kill: u64) -> ! {
    // The parent holds our stdin open; if it dies without killing us, stop.
    std::thread::spawn(|| {
        let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0; 1]);
        std::process::exit(4);
    });
    let db = backend::open(dir, options()).unwrap_or_else(|error| child_fail(&error));
    child_print("READY");
    std::thread::scope(|scope| {
        for writer in 0..WRITER_COUNT {
            let db = &db;
            scope.spawn(move || {
                for seq in 0.. {
                    let (a, b) = (key(kill, writer, seq, 0), key(kill, writer, seq, 1));
                    let mut batch = db.batch();
                    batch.put(&a, &value(&a)).put(&b, &value(&b));
                    let version = batch.commit().unwrap_or_else(|error| child_fail(&error));
                    child_print(&format!("ACK {writer} {seq} {}", version.get()));
                }
            });
        }
        scope.spawn(|| {
            let mut rng = fastrand::Rng::with_seed(kill);
            loop {
                let probe = key(kill, rng.usize(..WRITER_COUNT), rng.u64(..64), 0);
                db.get(&probe).unwrap_or_else(|error| child_fail(&error));
                let range = db.range(&probe[..]..).unwrap_or_else(|error| child_fail(&error));
                for item in range.take(16) {
                    item.unwrap_or_else(|error| child_fail(&error));
                }
            }
        });
    });
    unreachable!("the child's writers never stop");
}

/// Prints one line to the parent, flushed. Bypasses the test harness's output capture.
fn child_print(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush()).expect("write to the parent");
}

/// Exits the child with a failure the parent sees (it expects death by SIGKILL).
fn child_fail(error: &dyn std::fmt::Display) -> ! {
    eprintln!("kill test child: {error}");
    std::process::exit(3)
}

/// Starts a child writing to `dir`, kills it `delay` after it opened the database, and returns
/// the writes it acknowledged (complete lines only).
fn run_and_kill(dir: &Path, kill: u64, delay: Duration) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(CHILD_KILL_ENV, kill.to_string())
        .env(backend::BACKEND_ENV, backend::name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let mut stdout = BufReader::new(child.stdout.take().expect("the child's stdout"));
    wait_ready(&mut stdout, &mut child);
    let reader = std::thread::spawn(move || read_acks(stdout));
    std::thread::sleep(delay);
    if let Some(status) = child.try_wait().expect("poll the child") {
        panic!("kill {kill}: the child exited on its own: {status}");
    }
    child.kill().expect("kill the child");
    let status = child.wait().expect("reap the child");
    assert_eq!(status.signal(), Some(9), "kill {kill}: the child died by SIGKILL: {status}");
    reader.join().expect("the reader thread")
}

/// Reads the child's stdout up to its `READY` line (the harness prints lines of its own).
fn wait_ready(stdout: &mut BufReader<std::process::ChildStdout>, child: &mut Child) {
    let mut line = String::new();
    loop {
        line.clear();
        let len = stdout.read_line(&mut line).expect("read the child's stdout");
        if len == 0 {
            let status = child.wait().expect("reap the child");
            panic!("the child ended before opening the database: {status}");
        }
        // The harness prints "test NAME ... " before the test's own output, on this line.
        if line.ends_with("READY\n") {
            return;
        }
    }
}

/// The acknowledgements the child printed until it died; a torn last line is not one.
fn read_acks(mut stdout: BufReader<std::process::ChildStdout>) -> Vec<Ack> {
    let mut acks = Vec::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("read the child's stdout") > 0 {
        if let Some(ack) = line.strip_suffix('\n').and_then(parse_ack) {
            acks.push(ack);
        }
        line.clear();
    }
    acks
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut fields = line.strip_prefix("ACK ")?.split(' ');
    let writer = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let version = Version::new(fields.next()?.parse().ok()?);
    Some(Ack { writer, seq, version })
}

/// Reopens the database and checks it against `model` (everything before kill `kill`) and
/// `acks` (what the child of kill `kill` acknowledged); returns its whole content and its
/// segment count.
fn verify(dir: &Path, kill: u64, acks: &[Ack], model: &Model) -> Result<(Model, usize), String> {
    let db = backend::open(dir, options()).map_err(|error| format!("reopen: {error}"))?;
    let mut found = Model::new();
    for change in db.changes(&b""[..].., ..).map_err(|error| error.to_string())? {
        let change = change.map_err(|error| format!("scan: {error}"))?;
        let value = change.value.ok_or("a tombstone, and the test never deletes")?;
        let previous = found.insert(change.key.to_vec(), (change.version, value.to_vec()));
        if previous.is_some() {
            return Err(format!("key {:?} has two versions", change.key));
        }
    }
    let segment_count = db.stats().segment_count;
    db.close().map_err(|error| format!("close: {error}"))?;
    for (key, expected) in model {
        if found.get(key) != Some(expected) {
            return Err(format!("key {key:?}, written before the kill, is {:?}", found.get(key)));
        }
    }
    check_new_writes(kill, acks, model, &found)?;
    Ok((found, segment_count))
}

/// Checks the keys `found` holds beyond `model`: the child's writes, each whole, with the
/// acknowledged ones at their versions, and per writer a run from its first write that ends
/// at its last acknowledged write or one after it (in flight at the kill).
fn check_new_writes(kill: u64, acks: &[Ack], model: &Model, found: &Model) -> Result<(), String> {
    let mut write_count = [0_u64; WRITER_COUNT];
    for ack in acks {
        let slot = write_count.get_mut(ack.writer).ok_or("an ack from an unknown writer")?;
        if ack.seq != *slot {
            return Err(format!("writer {} acknowledged {} out of order", ack.writer, ack.seq));
        }
        *slot += 1;
        for half in 0..2 {
            let key = key(kill, ack.writer, ack.seq, half);
            let expected = (ack.version, value(&key));
            if found.get(&key) != Some(&expected) {
                return Err(format!("acknowledged {ack:?}: key {key:?} is {:?}", found.get(&key)));
            }
        }
    }
    let mut new_key_count = 0;
    for (writer, &acked) in write_count.iter().enumerate() {
        let mut seq = acked;
        while let Some(&(version, _)) = found.get(&key(kill, writer, seq, 0)) {
            for half in 0..2 {
                let key = key(kill, writer, seq, half);
                if found.get(&key) != Some(&(version, value(&key))) {
                    return Err(format!("a torn write: {key:?} is {:?}", found.get(&key)));
                }
            }
            seq += 1;
        }
        if seq > acked + 1 {
            return Err(format!("writer {writer}: {} writes after the last ack", seq - acked));
        }
        new_key_count += 2 * seq as usize;
    }
    if found.len() != model.len() + new_key_count {
        return Err(format!(
            "{} keys, expected {} from before and {new_key_count} new",
            found.len(),
            model.len(),
        ));
    }
    Ok(())
}
