//! The orders a merge can follow: any [`Order`], with the two the engine uses ready-made.

use core::cmp::Ordering;

use crate::{Entry, Version, zkey};

/// A total order on `T`, as a merge compares its sources' heads.
///
/// Every `Fn(&T, &T) -> Ordering` closure is one, so ad-hoc orders need no type of their own.
pub trait Order<T: ?Sized> {
    /// How `a` compares to `b`; [`Ordering::Less`] puts `a` first.
    fn cmp(&self, a: &T, b: &T) -> Ordering;
}

impl<T: ?Sized, F: Fn(&T, &T) -> Ordering> Order<T> for F {
    fn cmp(&self, a: &T, b: &T) -> Ordering {
        self(a, b)
    }
}

/// An item that is one version of one key: what [`KeyOrder`] and [`ZOrder`] compare.
///
/// Implemented for [`Entry`]; the engine implements it for its own items (an entry together
/// with the handle that keeps its segment alive, a memtable entry).
pub trait Keyed {
    /// The key.
    fn key(&self) -> &[u8];
    /// The version.
    fn version(&self) -> Version;

    /// The Morton prefix `M` of (key, version) that [`ZOrder`] compares first. Computed from
    /// the key and version by default; an item that carries `M` already (a segment entry
    /// decoded from its byte form starts with it) returns that instead and saves the work.
    fn morton(&self) -> u128 {
        zkey::morton(self.key(), self.version())
    }
}

impl Keyed for Entry<'_> {
    fn key(&self) -> &[u8] {
        self.key
    }

    fn version(&self) -> Version {
        self.version
    }
}

impl<T: Keyed + ?Sized> Keyed for &T {
    fn key(&self) -> &[u8] {
        (**self).key()
    }

    fn version(&self) -> Version {
        (**self).version()
    }

    fn morton(&self) -> u128 {
        (**self).morton()
    }
}

/// Whether `a` and `b` are the same key: keys of 8 bytes or more whose first 8 bytes differ are
/// told apart by one load each, without a call to `memcmp` (a scan asks this once per item:
/// "the same key as the one before?", and random keys almost always differ early).
#[must_use]
#[inline]
pub fn same_key(a: &[u8], b: &[u8]) -> bool {
    if let (Some(a_head), Some(b_head)) = (a.first_chunk::<8>(), b.first_chunk::<8>())
        && a_head != b_head
    {
        return false;
    }
    a == b
}

/// Key order: key ascending, then version descending (newest first), the order of a segment's
/// key index and of `range_at` and `history`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyOrder;

impl<T: Keyed + ?Sized> Order<T> for KeyOrder {
    fn cmp(&self, a: &T, b: &T) -> Ordering {
        a.key().cmp(b.key()).then_with(|| b.version().cmp(&a.version()))
    }
}

/// Z order: by Morton prefix ([`Keyed::morton`]), then by full key, as [`zkey::cmp_z`]
/// orders; the order of a segment's entries and of `changes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZOrder;

impl<T: Keyed + ?Sized> Order<T> for ZOrder {
    fn cmp(&self, a: &T, b: &T) -> Ordering {
        a.morton().cmp(&b.morton()).then_with(|| a.key().cmp(b.key()))
    }
}
