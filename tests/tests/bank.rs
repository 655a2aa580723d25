//! The bank invariant: [`ACCOUNT_COUNT`] accounts, eight threads moving money between them at
//! random in transactions. At `Serializable` the total never changes: in a read-only
//! transaction taken at any moment, at every version ever committed, and after a kill -9 of a
//! process in the middle of transfers and a reopen. At `Snapshot` the transfers keep the total
//! too (each writes both accounts it read), but write skew is possible: two withdrawals that
//! each check a joint balance and write different accounts both commit.
//!
//! `ZVERSE_BANK_MILLIS` sets how long the threads run (default 2000), `ZVERSE_BANK_KILLS` the
//! number of kills (default 4), `ZVERSE_SEED` the seed (printed).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use zverse::{Db, Durability, Error, Isolation, Options, Transaction, Version};
use zverse_tests::backend;

const ACCOUNT_COUNT: u64 = 16;
const BALANCE_START: u64 = 1_000;
const TOTAL: u64 = ACCOUNT_COUNT * BALANCE_START;
const THREAD_COUNT: u64 = 8;

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

fn seed() -> u64 {
    let seed = env_number("ZVERSE_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!("seed {seed} (ZVERSE_SEED={seed} repeats it)");
    seed
}

fn account(index: u64) -> Vec<u8> {
    format!("account/{index:02}").into_bytes()
}

fn decode(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("balances are 8 bytes"))
}

fn open_bank(path: &Path, durability: Durability) -> Db {
    let options = Options::default().durability(durability).memtable_bytes_max(64 << 10);
    let db = backend::open(path, options).expect("open");
    if db.get(&account(0)).expect("get").is_none() {
        let mut batch = db.batch();
        for index in 0..ACCOUNT_COUNT {
            batch.put(&account(index), &BALANCE_START.to_le_bytes());
        }
        batch.commit().expect("the opening balances");
    }
    db
}

/// Moves a random amount between two random accounts; `Ok(false)` if it lost a conflict.
fn transfer(db: &Db, rng: &mut fastrand::Rng, isolation: Isolation) -> zverse::Result<bool> {
    let mut tx = db.transaction_with(isolation);
    let from = rng.u64(..ACCOUNT_COUNT);
    let to = (from + rng.u64(1..ACCOUNT_COUNT)) % ACCOUNT_COUNT;
    let balance = |tx: &mut Transaction<'_>, index| -> zverse::Result<u64> {
        Ok(decode(&tx.get(&account(index), None)?.expect("every account exists")))
    };
    let (from_balance, to_balance) = (balance(&mut tx, from)?, balance(&mut tx, to)?);
    let amount = rng.u64(..=from_balance.min(100));
    tx.set(&account(from), &(from_balance - amount).to_le_bytes())?;
    tx.set(&account(to), &(to_balance + amount).to_le_bytes())?;
    match tx.commit() {
        Ok(_) => Ok(true),
        Err(Error::Conflict(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

/// The sum of every balance in `tx`.
fn total_in(tx: &mut Transaction<'_>) -> u64 {
    let start = account(0);
    let rows = tx.scan(start.as_slice().., usize::MAX, None).expect("scan");
    assert_eq!(rows.len() as u64, ACCOUNT_COUNT);
    rows.iter().map(|(_, balance)| decode(balance)).sum()
}

/// Checks the total at every version ever committed: replays every change to the accounts in
/// version order (one `changes` scan) and checks the total after each version. Returns how
/// many versions there are.
fn check_every_version(db: &Db) -> usize {
    let start = account(0);
    let mut changes: Vec<(Version, Vec<u8>, Option<u64>)> = db
        .changes(start.as_slice().., ..)
        .expect("changes")
        .map(|change| {
            let change = change.expect("change");
            (change.version, change.key.to_vec(), change.value.map(|v| decode(&v)))
        })
        .collect();
    changes.sort_unstable();
    let mut balances = std::collections::BTreeMap::new();
    let mut version_count = 0;
    for (index, (version, key, balance)) in changes.iter().enumerate() {
        balances.insert(key.clone(), balance.expect("accounts are never deleted"));
        let last_of_version = changes.get(index + 1).is_none_or(|next| next.0 != *version);
        if last_of_version {
            version_count += 1;
            assert_eq!(balances.values().sum::<u64>(), TOTAL, "the total at version {version}");
        }
    }
    version_count
}

#[test]
fn bank_total_never_changes_under_serializable() {
    run_bank(Isolation::Serializable);
}

/// Snapshot isolation keeps the total too: a transfer writes both accounts it read, so two
/// transfers that touch one account conflict on it (first committer wins), and no write skew
/// is possible between them.
#[test]
fn bank_total_never_changes_under_snapshot() {
    run_bank(Isolation::Snapshot);
}

/// Eight threads transfer at `isolation` for `ZVERSE_BANK_MILLIS` while a reader audits the
/// total; then the total is checked at every committed version.
fn run_bank(isolation: Isolation) {
    let millis = env_number("ZVERSE_BANK_MILLIS").unwrap_or(2_000);
    let seed = seed();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open_bank(dir.path(), Durability::None);
    let (commits, conflicts, audits) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for thread in 0..THREAD_COUNT {
            let (db, commits, conflicts, stop) = (&db, &commits, &conflicts, &stop);
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed ^ thread);
                while !stop.load(Ordering::Relaxed) {
                    let counter = match transfer(db, &mut rng, isolation) {
                        Ok(true) => commits,
                        Ok(false) => conflicts,
                        Err(error) => panic!("seed {seed}: {error}"),
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(total_in(&mut db.read_transaction()), TOTAL, "seed {seed}");
                audits.fetch_add(1, Ordering::Relaxed);
            }
        });
        std::thread::sleep(Duration::from_millis(millis));
        stop.store(true, Ordering::Relaxed);
    });
    let versions = check_every_version(&db);
    let (commits, conflicts) = (commits.into_inner(), conflicts.into_inner());
    let audits = audits.into_inner();
    eprintln!(
        "bank at {isolation:?}: {commits} transfers, {conflicts} conflicts ({}% aborted), \
         {audits} audits, {versions} versions checked, in {millis} ms (seed {seed})",
        100 * conflicts / (commits + conflicts).max(1),
    );
    assert!(commits > 0 && audits > 0);
}

/// A customer's two accounts may each go negative as long as their sum does not. Each
/// withdrawal reads both and writes one: snapshot isolation lets two of them both commit
/// (write skew) and the sum goes negative; serializable refuses the second.
#[test]
fn write_skew_is_possible_under_snapshot_only() {
    for isolation in [Isolation::Snapshot, Isolation::Serializable] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = backend::open(dir.path(), Options::default()).expect("open");
        db.put(b"checking", &100_i64.to_le_bytes()).unwrap();
        db.put(b"savings", &50_i64.to_le_bytes()).unwrap();
        let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
        let first = withdraw(&mut t1, b"checking", 120);
        let second = withdraw(&mut t2, b"savings", 120);
        assert!(first && second, "each sees a joint balance of 150");
        assert!(t1.commit().is_ok());
        let second_committed = t2.commit().is_ok();
        let sum: i64 = [b"checking".as_slice(), b"savings"]
            .iter()
            .map(|key| i64::from_le_bytes(db.get(key).unwrap().unwrap()[..].try_into().unwrap()))
            .sum();
        match isolation {
            Isolation::Snapshot => assert_eq!((second_committed, sum), (true, -90)),
            _ => assert_eq!((second_committed, sum), (false, 30)),
        }
    }
}

/// Withdraws `amount` from `key` if the joint balance allows it.
fn withdraw(tx: &mut Transaction<'_>, key: &[u8], amount: i64) -> bool {
    let read = |tx: &mut Transaction<'_>, key: &[u8]| {
        i64::from_le_bytes(tx.get(key, None).unwrap().unwrap()[..].try_into().unwrap())
    };
    let joint = read(tx, b"checking") + read(tx, b"savings");
    if joint < amount {
        return false;
    }
    let balance = read(tx, key);
    tx.set(key, &(balance - amount).to_le_bytes()).unwrap();
    true
}

/// Unix only: the parent kills with SIGKILL and reads the signal from the exit status.
#[cfg(unix)]
mod kill_9 {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::*;

    /// Set in the child's environment: the database directory it transfers in.
    const CHILD_ENV: &str = "ZVERSE_BANK_CHILD_DIR";
    const KILL_TEST_NAME: &str = "kill_9::bank_total_survives_kill_9_mid_transfer";

    /// A child process transfers at `Serializable` with `Durability::Sync` from eight threads; the
    /// parent kills it (SIGKILL) at a random moment, reopens, and checks the total at the latest
    /// version and at every version ever committed; then starts the next child on the same data.
    #[test]
    fn bank_total_survives_kill_9_mid_transfer() {
        if let Some(dir) = std::env::var_os(CHILD_ENV) {
            child_main(Path::new(&dir));
        }
        let kills = env_number("ZVERSE_BANK_KILLS").unwrap_or(4);
        let seed = seed();
        let mut rng = fastrand::Rng::with_seed(seed);
        let dir = tempfile::tempdir().expect("tempdir");
        drop(open_bank(dir.path(), Durability::Sync));
        let mut versions = 0;
        for kill in 0..kills {
            let transfers = run_and_kill(dir.path(), Duration::from_millis(rng.u64(20..300)));
            let db = open_bank(dir.path(), Durability::Sync);
            assert_eq!(total_in(&mut db.read_transaction()), TOTAL, "seed {seed}, kill {kill}");
            let versions_before = versions;
            versions = check_every_version(&db);
            assert!(
                versions >= versions_before + transfers,
                "every acknowledged transfer is there"
            );
            eprintln!(
                "kill {kill}: {transfers} transfers acknowledged, {versions} versions checked"
            );
        }
        assert!(versions > 1, "the children committed transfers");
    }

    fn child_main(dir: &Path) -> ! {
        std::thread::spawn(|| {
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0; 1]);
            std::process::exit(4); // the parent died without killing us
        });
        let db = open_bank(dir, Durability::Sync);
        println_flushed("READY");
        std::thread::scope(|scope| {
            for thread in 0..THREAD_COUNT {
                let db = &db;
                scope.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(thread);
                    loop {
                        match transfer(db, &mut rng, Isolation::Serializable) {
                            Ok(true) => println_flushed("ACK"),
                            Ok(false) => {}
                            Err(error) => {
                                eprintln!("bank child: {error}");
                                std::process::exit(3);
                            }
                        }
                    }
                });
            }
        });
        unreachable!("the child's threads never stop");
    }

    fn println_flushed(line: &str) {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}").and_then(|()| stdout.flush()).expect("write to the parent");
    }

    /// Runs a child on `dir`, kills it `delay` after it opened the database, and returns how many
    /// transfers it acknowledged.
    fn run_and_kill(dir: &Path, delay: Duration) -> usize {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args([KILL_TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .env(backend::BACKEND_ENV, backend::name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child");
        let mut stdout = BufReader::new(child.stdout.take().expect("the child's stdout"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut line = String::new();
        // The harness may print its own text ahead of the child's first line.
        while !line.trim_end().ends_with("READY") {
            line.clear();
            let read = stdout.read_line(&mut line).expect("read the child");
            assert!(read > 0 && Instant::now() < deadline, "the child never opened the database");
        }
        let reader = std::thread::spawn(move || {
            stdout.lines().map_while(Result::ok).filter(|l| l == "ACK").count()
        });
        std::thread::sleep(delay);
        assert!(child.try_wait().expect("poll").is_none(), "the child exited on its own");
        child.kill().expect("kill the child");
        let status = child.wait().expect("reap the child");
        assert_eq!(status.signal(), Some(9), "the child died of SIGKILL");
        reader.join().expect("the reader thread")
    }
}
