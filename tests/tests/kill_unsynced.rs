//! Real kill -9 under `Durability::None`, whose log holds its newest frames in memory: a child
//! process (this test binary, re-executed with [`CHILD_ENV`] set) writes numbered batches of
//! two keys from one thread into a small memtable (so rotations write the held frames and
//! seal logs), calls `flush` every [`FLUSH_EVERY`] writes and prints what it acknowledged and
//! flushed. The parent kills it (SIGKILL) at a random moment, reopens the database and checks
//! that what survived is a prefix of the writes: every write up to the last flush, each batch
//! whole, no write missing before a found one, and at most one unacknowledged write.
//!
//! `ZVERSE_KILL_COUNT` sets the number of kills (default [`KILL_COUNT_DEFAULT`]) and
//! `ZVERSE_KILL_SEED` the seed, which is printed. Unix only (SIGKILL).
#![cfg(unix)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use zverse::{Durability, Options};
use zverse_tests::backend;

/// Set in the child's environment: the database directory it writes to.
const CHILD_ENV: &str = "ZVERSE_KILL_UNSYNCED_CHILD_DIR";
const KILL_COUNT_DEFAULT: u64 = 10;
/// The child is killed this long (at most) after it reports the database open.
const KILL_DELAY_MAX: Duration = Duration::from_millis(150);
/// The child flushes after every this many writes.
const FLUSH_EVERY: u64 = 500;
const TEST_NAME: &str = "kill_9_under_none_keeps_a_prefix_of_the_writes_and_every_flushed_one";

#[test]
fn kill_9_under_none_keeps_a_prefix_of_the_writes_and_every_flushed_one() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child_main(Path::new(&dir));
    }
    let kill_count = env_number("ZVERSE_KILL_COUNT").unwrap_or(KILL_COUNT_DEFAULT);
    let seed = env_number("ZVERSE_KILL_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!("kill test, Durability::None: {kill_count} kills, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut lost_max = 0;
    for kill in 0..kill_count {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (acked, flushed) = run_and_kill(dir.path(), KILL_DELAY_MAX.mul_f64(rng.f64()));
        let found = verify(dir.path(), acked, flushed)
            .unwrap_or_else(|error| panic!("seed {seed}, kill {kill}: {error}"));
        lost_max = lost_max.max(acked.saturating_sub(found));
    }
    eprintln!(
        "kill test, Durability::None: at most {lost_max} acknowledged writes lost (seed {seed})"
    );
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

fn options() -> Options {
    Options::default().durability(Durability::None).memtable_bytes_max(64 << 10)
}

fn key(seq: u64, half: u8) -> Vec<u8> {
    format!("{seq:010}/{half}").into_bytes()
}

fn value(key: &[u8]) -> Vec<u8> {
    let mut value = b"value of ".to_vec();
    value.extend_from_slice(key);
    value
}

/// The child: writes until it is killed; never returns.
fn child_main(dir: &Path) -> ! {
    // The parent holds our stdin open; if it dies without killing us, stop.
    std::thread::spawn(|| {
        let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0; 1]);
        std::process::exit(4);
    });
    let db = backend::open(dir, options()).unwrap_or_else(|error| child_fail(&error));
    child_print("READY");
    for seq in 0.. {
        let (a, b) = (key(seq, 0), key(seq, 1));
        let mut batch = db.batch();
        batch.put(&a, &value(&a)).put(&b, &value(&b));
        batch.commit().unwrap_or_else(|error| child_fail(&error));
        child_print(&format!("ACK {seq}"));
        if (seq + 1) % FLUSH_EVERY == 0 {
            db.flush().unwrap_or_else(|error| child_fail(&error));
            child_print(&format!("FLUSHED {seq}"));
        }
    }
    unreachable!("the child never stops writing");
}

fn child_print(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush()).expect("write to the parent");
}

fn child_fail(error: &dyn std::fmt::Display) -> ! {
    eprintln!("kill test child: {error}");
    std::process::exit(3)
}

/// Runs a child, kills it `delay` after it opened the database; returns how many writes it
/// acknowledged and how many were flushed.
fn run_and_kill(dir: &Path, delay: Duration) -> (u64, u64) {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(backend::BACKEND_ENV, backend::name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let mut stdout = BufReader::new(child.stdout.take().expect("the child's stdout"));
    let mut line = String::new();
    while !line.ends_with("READY\n") {
        line.clear();
        let len = stdout.read_line(&mut line).expect("read the child's stdout");
        assert!(len > 0, "the child ended before opening the database");
    }
    let reader = std::thread::spawn(move || read_counts(stdout));
    std::thread::sleep(delay);
    assert!(child.try_wait().expect("poll the child").is_none(), "the child exited on its own");
    child.kill().expect("kill the child");
    let status = child.wait().expect("reap the child");
    assert_eq!(status.signal(), Some(9), "the child died by SIGKILL: {status}");
    reader.join().expect("the reader thread")
}

/// The writes acknowledged and flushed, from the child's complete lines.
fn read_counts(mut stdout: BufReader<std::process::ChildStdout>) -> (u64, u64) {
    let (mut acked, mut flushed) = (0, 0);
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("read the child's stdout") > 0 {
        let number = |prefix| line.strip_prefix(prefix)?.strip_suffix('\n')?.parse::<u64>().ok();
        if let Some(seq) = number("ACK ") {
            assert_eq!(seq, acked, "acknowledged in order");
            acked = seq + 1;
        } else if let Some(seq) = number("FLUSHED ") {
            flushed = seq + 1;
        }
        line.clear();
    }
    (acked, flushed)
}

/// Reopens the database; checks it holds writes `0..found`, each whole and nothing else, with
/// `flushed <= found <= acked + 1`; returns `found`.
fn verify(dir: &Path, acked: u64, flushed: u64) -> Result<u64, String> {
    let db = backend::open(dir, options()).map_err(|error| format!("reopen: {error}"))?;
    let mut found = 0;
    while db.get(&key(found, 0)).map_err(|error| error.to_string())?.is_some() {
        found += 1;
    }
    for seq in 0..found {
        for half in 0..2 {
            let key = key(seq, half);
            let got = db.get(&key).map_err(|error| error.to_string())?;
            if got.as_deref() != Some(&value(&key)[..]) {
                return Err(format!("write {seq} is torn or wrong: {key:?} is {got:?}"));
            }
        }
    }
    let key_count = db.range(&b""[..]..).map_err(|error| error.to_string())?.count() as u64;
    if key_count != 2 * found {
        return Err(format!("{key_count} keys, but writes 0..{found} hold {}", 2 * found));
    }
    if found < flushed || found > acked + 1 {
        return Err(format!("{found} writes found: {flushed} were flushed, {acked} acknowledged"));
    }
    db.close().map_err(|error| format!("close: {error}"))?;
    Ok(found)
}
