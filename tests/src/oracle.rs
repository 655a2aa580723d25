//! [`Oracle`]: the one model every test checks the engine's reads against. Every version ever
//! written, in a `BTreeMap` keyed by (key, version); each read is answered from it by its
//! definition, with no cleverness to share bugs with the engine.
//!
//! The model test (`tests/tests/model.rs`) writes every acknowledged commit into one; the
//! `db_model` fuzz check ([`crate::fuzz_model`]) builds one from each prefix of its commits
//! that a crash may leave; the crash workload ([`crate::crash_workload`]) from the prefixes of
//! its commits.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use zverse::Version;

/// Key ranges as the engine's scans take them.
pub type KeySlices<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

/// Every version ever written. `B` is the tests' byte type (`Vec<u8>`, or a newtype that
/// prints as text).
#[derive(Clone, Debug)]
pub struct Oracle<B = Vec<u8>> {
    versions: BTreeMap<(B, Version), Option<B>>,
}

impl<B> Default for Oracle<B> {
    fn default() -> Oracle<B> {
        Oracle { versions: BTreeMap::new() }
    }
}

impl<B> Oracle<B>
where
    B: Clone + Ord + AsRef<[u8]> + for<'a> From<&'a [u8]>,
{
    /// Records one commit: each key written at `version` (`None`: a delete). When a key
    /// appears twice, the later write wins, as in a batch.
    pub fn write<'w>(
        &mut self,
        version: Version,
        writes: impl IntoIterator<Item = (&'w B, &'w Option<B>)>,
    ) where
        B: 'w,
    {
        for (key, value) in writes {
            self.versions.insert((key.clone(), version), value.clone());
        }
    }

    /// The versions of `key` at or below `cap`, oldest first.
    #[must_use]
    pub fn versions_of(
        &self,
        key: &[u8],
        cap: Version,
    ) -> impl DoubleEndedIterator<Item = (Version, &Option<B>)> {
        let key = B::from(key);
        let range = (key.clone(), Version::ZERO)..=(key, cap);
        self.versions.range(range).map(|((_, version), value)| (*version, value))
    }

    /// `get_at(key, version)`: the newest version at or below `version`, a delete as `None`.
    #[must_use]
    pub fn value_at(&self, key: &[u8], version: Version) -> Option<B> {
        self.versions_of(key, version).next_back().and_then(|(_, value)| value.clone())
    }

    /// `history(key)` as of `cap`: newest first, deletes as `None`.
    #[must_use]
    pub fn history(&self, key: &[u8], cap: Version) -> Vec<(Version, Option<B>)> {
        self.versions_of(key, cap).rev().map(|(version, value)| (version, value.clone())).collect()
    }

    /// How many (key, version) pairs were written.
    #[must_use]
    pub fn version_count(&self) -> usize {
        self.versions.len()
    }

    /// Every key ever written, in order.
    #[must_use]
    pub fn keys(&self) -> Vec<B> {
        let mut keys: Vec<B> = self.versions.keys().map(|(key, _)| key.clone()).collect();
        keys.dedup();
        keys
    }

    /// `range_at(keys, version)`: each key's value as of `version`, deleted keys left out.
    #[must_use]
    pub fn range_at(&self, keys: KeySlices<'_>, version: Version) -> Vec<(B, B)> {
        let keys_in = self.keys().into_iter().filter(|key| keys.contains(&key.as_ref()));
        keys_in
            .filter_map(|key| Some((key.clone(), self.value_at(key.as_ref(), version)?)))
            .collect()
    }

    /// `changes(keys, versions)` as of `cap`: every write in the box, in (key, version) order.
    #[must_use]
    pub fn changes(
        &self,
        keys: KeySlices<'_>,
        versions: &impl RangeBounds<Version>,
        cap: Version,
    ) -> Vec<(B, Version, Option<B>)> {
        let inside = |key: &B, version: &Version| {
            keys.contains(&key.as_ref()) && versions.contains(version) && *version <= cap
        };
        let hits = self.versions.iter().filter(|((key, version), _)| inside(key, version));
        hits.map(|((key, version), value)| (key.clone(), *version, value.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle() -> Oracle {
        let mut oracle = Oracle::default();
        let (a, b) = (b"a".to_vec(), b"b".to_vec());
        oracle.write(Version::new(1), [(&a, &Some(b"1".to_vec())), (&b, &Some(b"x".to_vec()))]);
        oracle.write(Version::new(2), [(&a, &None), (&a, &Some(b"2".to_vec()))]);
        oracle.write(Version::new(3), [(&b, &None)]);
        oracle
    }

    #[test]
    fn reads_follow_their_definitions() {
        let oracle = oracle();
        let all = (Bound::Unbounded, Bound::Unbounded);
        assert_eq!(oracle.value_at(b"a", Version::new(1)), Some(b"1".to_vec()));
        assert_eq!(oracle.value_at(b"a", Version::new(9)), Some(b"2".to_vec()), "later wins");
        assert_eq!(oracle.value_at(b"b", Version::new(3)), None, "deleted");
        assert_eq!(oracle.value_at(b"a", Version::ZERO), None, "before the first write");
        let history = oracle.history(b"b", Version::MAX);
        assert_eq!(history, [(Version::new(3), None), (Version::new(1), Some(b"x".to_vec()))]);
        assert_eq!(oracle.range_at(all, Version::new(3)), [(b"a".to_vec(), b"2".to_vec())]);
        assert_eq!(oracle.range_at(all, Version::new(1)).len(), 2);
        let changes = oracle.changes(all, &(Version::new(2)..), Version::MAX);
        assert_eq!(
            changes,
            [
                (b"a".to_vec(), Version::new(2), Some(b"2".to_vec())),
                (b"b".to_vec(), Version::new(3), None)
            ]
        );
        assert_eq!(oracle.changes(all, &.., Version::new(1)).len(), 2, "capped");
    }
}
