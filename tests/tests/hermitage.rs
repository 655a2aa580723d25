//! The Hermitage anomaly suite (Martin Kleppmann's "Hermitage: testing transaction isolation
//! levels"), each test a deterministic interleaving of two or three transactions on one thread,
//! run at both isolation levels. The rows of [`EXPECTED`] are the facts of Hermitage's published
//! table for PostgreSQL "repeatable read" (snapshot isolation) and "serializable" (SSI):
//! snapshot isolation prevents everything but G2-item and G2, serializable prevents all.
//!
//! Where PostgreSQL blocks a writer until the other commits and then aborts it, ZVerse (being
//! optimistic) lets it continue and aborts it at commit with `Error::Conflict`; the observable
//! outcome (which transactions commit, what each read returns) is what the table asserts.
//!
//! Table `test` of Hermitage is keys `test/1` = 10 and `test/2` = 20 here.

use zverse::{Db, Durability, Error, Isolation, Options, Slice, Transaction};
use zverse_tests::backend;

/// Whether the anomaly was observed (`true`) or prevented (`false`).
type Scenario = fn(&Db, Isolation) -> bool;

/// Hermitage's table: anomaly, scenario, observed under snapshot isolation, under serializable.
const EXPECTED: &[(&str, Scenario, bool, bool)] = &[
    ("G0", g0_write_cycles, false, false),
    ("G1a", g1a_aborted_reads, false, false),
    ("G1b", g1b_intermediate_reads, false, false),
    ("G1c", g1c_circular_information_flow, false, false),
    ("OTV", otv_observed_transaction_vanishes, false, false),
    ("PMP", pmp_predicate_many_preceders, false, false),
    ("P4", p4_lost_update, false, false),
    ("G-single", g_single_read_skew, false, false),
    ("G2-item", g2_item_write_skew, true, false),
    ("G2", g2_anti_dependency_cycles, true, false),
];

#[test]
fn hermitage_table_holds_at_both_isolation_levels() {
    for &(name, scenario, snapshot, serializable) in EXPECTED {
        for (isolation, expected) in
            [(Isolation::Snapshot, snapshot), (Isolation::Serializable, serializable)]
        {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let db = setup(dir.path());
            let observed = scenario(&db, isolation);
            assert_eq!(observed, expected, "{name} under {isolation:?}: anomaly observed");
        }
    }
}

fn setup(path: &std::path::Path) -> Db {
    let db = backend::open(path, Options::default().durability(Durability::None)).expect("open");
    db.put(b"test/1", b"10").expect("put");
    db.put(b"test/2", b"20").expect("put");
    db
}

fn get(tx: &mut Transaction<'_>, id: u8) -> Option<String> {
    let key = format!("test/{id}");
    tx.get(key.as_bytes(), None).expect("get").map(|v| text(&v))
}

fn set(tx: &mut Transaction<'_>, id: u8, value: &str) {
    tx.set(format!("test/{id}").as_bytes(), value.as_bytes()).expect("set");
}

fn text(value: &Slice) -> String {
    String::from_utf8(value.to_vec()).expect("UTF-8 test values")
}

/// Every row of `test` as the transaction sees it: `(id, value)`.
fn rows(tx: &mut Transaction<'_>) -> Vec<(String, i64)> {
    let rows = tx.scan(b"test/".as_slice()..b"test0".as_slice(), usize::MAX, None).expect("scan");
    rows.iter().map(|(k, v)| (text(k), text(v).parse().expect("numbers"))).collect()
}

/// Commits; `true` if it committed, `false` if it lost with `Error::Conflict`.
fn commits(tx: &mut Transaction<'_>) -> bool {
    match tx.commit() {
        Ok(_) => true,
        Err(Error::Conflict(_)) => false,
        Err(other) => panic!("commit failed with {other}"),
    }
}

fn db_value(db: &Db, id: u8) -> Option<String> {
    db.get(format!("test/{id}").as_bytes()).expect("get").map(|v| text(&v))
}

/// G0, write cycles: two transactions write x and y in interleaved order; the result must be
/// one of theirs, not a mix.
fn g0_write_cycles(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    set(&mut t1, 1, "11");
    set(&mut t2, 1, "12");
    set(&mut t1, 2, "21");
    set(&mut t2, 2, "22");
    assert!(commits(&mut t1));
    assert!(!commits(&mut t2), "first committer wins");
    let state = (db_value(db, 1), db_value(db, 2));
    state != (Some("11".into()), Some("21".into()))
        && state != (Some("12".into()), Some("22".into()))
}

/// G1a, aborted reads: a read must never see a write of a transaction that aborts.
fn g1a_aborted_reads(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    set(&mut t1, 1, "101");
    set(&mut t1, 2, "201");
    let during = get(&mut t2, 1);
    t1.cancel().expect("cancel");
    let after = rows(&mut t2);
    assert!(commits(&mut t2));
    during.as_deref() != Some("10") || after != [("test/1".into(), 10), ("test/2".into(), 20)]
}

/// G1b, intermediate reads: a read must never see a value a transaction overwrote before it
/// committed.
fn g1b_intermediate_reads(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    set(&mut t1, 1, "101");
    let before = get(&mut t2, 1);
    set(&mut t1, 1, "11");
    assert!(commits(&mut t1));
    let after = get(&mut t2, 1);
    assert!(commits(&mut t2), "a read-only transaction never conflicts");
    [before, after].iter().any(|seen| seen.as_deref() == Some("101"))
}

/// G1c, circular information flow: two transactions must not each see the other's write.
fn g1c_circular_information_flow(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    set(&mut t1, 1, "11");
    set(&mut t2, 2, "22");
    let t1_saw = get(&mut t1, 2);
    let t2_saw = get(&mut t2, 1);
    assert!(commits(&mut t1));
    // Under SSI, t2 read x, which t1 wrote and committed after t2 started.
    assert_eq!(commits(&mut t2), isolation == Isolation::Snapshot);
    t1_saw.as_deref() == Some("22") || t2_saw.as_deref() == Some("11")
}

/// OTV, observed transaction vanishes: a reader must not see one transaction's write to x and
/// another's to y.
fn otv_observed_transaction_vanishes(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    set(&mut t1, 1, "11");
    set(&mut t1, 2, "19");
    set(&mut t2, 1, "12");
    assert!(commits(&mut t1));
    // PostgreSQL takes t3's snapshot at its first read, after t1 committed.
    let mut t3 = db.transaction_with(isolation);
    let x = get(&mut t3, 1);
    set(&mut t2, 2, "18");
    let y = get(&mut t3, 2);
    assert!(!commits(&mut t2), "t2 wrote x after t1 did");
    assert!(commits(&mut t3));
    (x, y) != (Some("11".into()), Some("19".into()))
}

/// PMP, predicate many preceders: a predicate read repeated must not see a row inserted
/// meanwhile; a predicate delete must not hit a row another transaction changed meanwhile.
fn pmp_predicate_many_preceders(db: &Db, isolation: Isolation) -> bool {
    // The read variant.
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    let first = rows(&mut t1).into_iter().filter(|(_, v)| *v == 30).count();
    t2.set(b"test/3", b"30").expect("insert");
    assert!(commits(&mut t2));
    let second = rows(&mut t1).into_iter().filter(|(_, v)| v % 3 == 0).count();
    assert!(commits(&mut t1));
    let read_anomaly = first != 0 || second != 0;
    db.delete(b"test/3").expect("delete");
    // The write variant: t1 adds 10 to every row, t2 deletes the row whose value is 20.
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    for (key, value) in rows(&mut t1) {
        t1.set(key.as_bytes(), (value + 10).to_string().as_bytes()).expect("update");
    }
    for (key, value) in rows(&mut t2) {
        if value == 20 {
            t2.del(key.as_bytes()).expect("delete");
        }
    }
    assert!(commits(&mut t1));
    let write_anomaly = commits(&mut t2);
    read_anomaly || write_anomaly
}

/// P4, lost update: two read-modify-writes of one key must not both commit.
fn p4_lost_update(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    get(&mut t1, 1);
    get(&mut t2, 1);
    set(&mut t1, 1, "11");
    set(&mut t2, 1, "11");
    assert!(commits(&mut t1));
    commits(&mut t2)
}

/// G-single, read skew: a transaction must not see x before and y after another transaction's
/// commit; nor delete by a predicate over a row that transaction changed.
fn g_single_read_skew(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    let x = get(&mut t1, 1);
    get(&mut t2, 1);
    get(&mut t2, 2);
    set(&mut t2, 1, "12");
    set(&mut t2, 2, "18");
    assert!(commits(&mut t2));
    let y = get(&mut t1, 2);
    assert!(commits(&mut t1), "t1 wrote nothing");
    let read_anomaly = (x, y) != (Some("10".into()), Some("20".into()));
    // The predicate-write variant, from (12, 18): t2 moves to (13, 17); t1 deletes the row
    // whose value is 18 in its snapshot.
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    get(&mut t1, 1);
    set(&mut t2, 1, "13");
    set(&mut t2, 2, "17");
    assert!(commits(&mut t2));
    for (key, value) in rows(&mut t1) {
        if value == 18 {
            t1.del(key.as_bytes()).expect("delete");
        }
    }
    let write_anomaly = commits(&mut t1);
    read_anomaly || write_anomaly
}

/// G2-item, write skew: two transactions read x and y, each writes one of them; serializable
/// lets only one commit.
fn g2_item_write_skew(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    t1.getm(&[b"test/1", b"test/2"], None).expect("getm");
    t2.getm(&[b"test/1", b"test/2"], None).expect("getm");
    set(&mut t1, 1, "11");
    set(&mut t2, 2, "21");
    assert!(commits(&mut t1));
    commits(&mut t2)
}

/// G2, anti-dependency cycles over a predicate: both transactions find no row with value
/// divisible by 3 and each inserts one; serializable lets only one commit.
fn g2_anti_dependency_cycles(db: &Db, isolation: Isolation) -> bool {
    let (mut t1, mut t2) = (db.transaction_with(isolation), db.transaction_with(isolation));
    assert_eq!(rows(&mut t1).iter().filter(|(_, v)| v % 3 == 0).count(), 0);
    assert_eq!(rows(&mut t2).iter().filter(|(_, v)| v % 3 == 0).count(), 0);
    t1.set(b"test/3", b"30").expect("insert");
    t2.set(b"test/4", b"42").expect("insert");
    assert!(commits(&mut t1));
    commits(&mut t2)
}
