//! Changes oldest first, in memory bounded by a constant: the engine yields a box query in Z
//! order, so this reads the version window in consecutive sub-windows, each small enough to
//! sort in memory ([`Budget`]), and hands on each sub-window's changes sorted by (version,
//! key). A sub-window over the budget is shrunk to the version a quarter of the way through
//! what it read (at most half its width) and read again; one that is a single version is
//! handed on unsorted, in the engine's order (one version is one batch, so nothing depends on
//! its order). After a sub-window of at most a quarter of the budget, the next one is twice as
//! wide. `dump`, `dump --all-versions` and `changes` all stream through here.

use zverse::{Change, Snapshot, Version};

use crate::commands::{Context, KeyBounds, borrow_bounds};
use crate::fail::Fail;

/// How much one sub-window may hold before it is sorted.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub changes_max: usize,
    /// Key and value bytes (values read from segments are mapped, not copied).
    pub bytes_max: usize,
}

/// The budget of the tool's commands: about 70 MiB at most, whatever the database's size.
pub const BUDGET: Budget = Budget { changes_max: 65_536, bytes_max: 64 << 20 };

/// What reading one sub-window gave.
enum Window {
    /// Every change in it.
    All(Vec<Change>),
    /// Over the budget: the versions of what was read before it stopped.
    Over(Vec<u64>),
}

/// Calls `visit` with every change to a key in `keys` with a version in `versions` (both
/// included) as of `snapshot`, oldest first (ties in key order, except within a version over
/// the budget).
pub fn for_each(
    context: &Context,
    snapshot: &Snapshot,
    keys: &KeyBounds,
    versions: (Version, Version),
    budget: Budget,
    mut visit: impl FnMut(Change) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let (mut from, to_max) = (versions.0.get(), versions.1.get().min(snapshot.version().get()));
    let mut width = to_max.saturating_sub(from).saturating_add(1);
    while from <= to_max {
        assert!(width >= 1, "a sub-window holds at least one version");
        let to = from.saturating_add(width - 1).min(to_max);
        match read_window(context, snapshot, keys, (from, to), budget)? {
            Window::All(mut changes) => {
                let len = changes.len();
                changes.sort_unstable_by(|a, b| (a.version, &*a.key).cmp(&(b.version, &*b.key)));
                changes.into_iter().try_for_each(&mut visit)?;
                if len <= budget.changes_max / 4 {
                    width = width.saturating_mul(2);
                }
            }
            Window::Over(_) if from == to => stream_one(context, snapshot, keys, from, &mut visit)?,
            Window::Over(mut seen) => {
                seen.sort_unstable();
                let quarter = seen.get(seen.len() / 4).copied().unwrap_or(to);
                let end = quarter.min(from + (to - from) / 2).max(from);
                width = end - from + 1;
                continue;
            }
        }
        match to.checked_add(1) {
            Some(next) => from = next,
            None => break,
        }
    }
    Ok(())
}

fn read_window(
    context: &Context,
    snapshot: &Snapshot,
    keys: &KeyBounds,
    (from, to): (u64, u64),
    budget: Budget,
) -> Result<Window, Fail> {
    let window = Version::new(from)..=Version::new(to);
    let changes = snapshot.changes(borrow_bounds(keys), window).map_err(|e| context.fail(e))?;
    let mut held = Vec::new();
    let mut bytes: usize = 0;
    for change in changes {
        let change = change.map_err(|error| context.fail(error))?;
        let len = change.key.len() + change.value.as_ref().map_or(0, |value| value.len());
        bytes = bytes.saturating_add(len);
        held.push(change);
        if held.len() > budget.changes_max || bytes > budget.bytes_max {
            return Ok(Window::Over(held.iter().map(|change| change.version.get()).collect()));
        }
    }
    Ok(Window::All(held))
}

/// Every change at one version, in the engine's order, without holding them.
fn stream_one(
    context: &Context,
    snapshot: &Snapshot,
    keys: &KeyBounds,
    version: u64,
    visit: &mut impl FnMut(Change) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let version = Version::new(version);
    let changes = snapshot.changes(borrow_bounds(keys), version..=version);
    for change in changes.map_err(|error| context.fail(error))? {
        visit(change.map_err(|error| context.fail(error))?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use zverse::{Db, Options, Version};

    use super::{Budget, for_each};
    use crate::commands::Context;

    /// A small seeded generator, as `bench` has.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Writes single puts, deletes and batches (one of 40 keys) to random keys, flushing now
    /// and then; returns every (version, key) written.
    fn fill(db: &Db, seed: u64) -> Vec<(u64, Vec<u8>)> {
        let mut state = seed | 1;
        let mut written = Vec::new();
        for round in 0..300_u64 {
            let key = |state: &mut u64| format!("k{:03}", next(state) % 97).into_bytes();
            if round % 50 == 7 {
                let mut batch = db.batch();
                let mut keys: Vec<Vec<u8>> = (0..40).map(|_| key(&mut state)).collect();
                keys.sort();
                keys.dedup();
                for key in &keys {
                    batch.put(key, b"batch");
                }
                let version = batch.commit().unwrap().get();
                written.extend(keys.into_iter().map(|key| (version, key)));
            } else if round % 9 == 0 {
                let key = key(&mut state);
                written.push((db.delete(&key).unwrap().get(), key));
            } else {
                let key = key(&mut state);
                written.push((db.put(&key, &round.to_le_bytes()).unwrap().get(), key));
            }
            if round % 70 == 0 {
                db.flush().unwrap();
            }
        }
        written.sort();
        written
    }

    #[test]
    fn yields_every_change_oldest_first_under_any_budget() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_secs());
        println!("seed {seed}");
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let written = fill(&db, seed);
        let context = Context { db: dir.path().to_path_buf(), json: false };
        let snapshot = db.snapshot();
        let all = (Bound::Unbounded, Bound::Unbounded);
        for changes_max in [1, 3, 8, 64, 100_000] {
            let budget = Budget { changes_max, bytes_max: usize::MAX };
            let mut visited = Vec::new();
            let versions = (Version::ZERO, Version::MAX);
            for_each(&context, &snapshot, &all, versions, budget, |change| {
                visited.push((change.version.get(), change.key.to_vec()));
                Ok(())
            })
            .unwrap();
            let mut sorted = visited.clone();
            sorted.sort();
            assert_eq!(sorted, written, "seed {seed}, budget {changes_max}: every change once");
            let versions: Vec<u64> = visited.iter().map(|(version, _)| *version).collect();
            assert!(versions.is_sorted(), "seed {seed}, budget {changes_max}: oldest first");
        }
        let window = (Version::new(written[10].0), Version::new(written[200].0));
        let keys = (Bound::Included(b"k010".to_vec()), Bound::Excluded(b"k050".to_vec()));
        let budget = Budget { changes_max: 4, bytes_max: 64 };
        let mut visited = Vec::new();
        for_each(&context, &snapshot, &keys, window, budget, |change| {
            visited.push((change.version.get(), change.key.to_vec()));
            Ok(())
        })
        .unwrap();
        let expected: Vec<_> = written
            .iter()
            .filter(|(version, key)| {
                (window.0.get()..=window.1.get()).contains(version)
                    && key.as_slice() >= b"k010".as_slice()
                    && key.as_slice() < b"k050".as_slice()
            })
            .cloned()
            .collect();
        assert!(visited.iter().map(|(version, _)| version).is_sorted(), "seed {seed}");
        visited.sort();
        assert_eq!(visited, expected, "seed {seed}: a key range and a window");
    }
}
