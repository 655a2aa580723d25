//! [`KeyRange`]: key ranges as people write them, and [`prefix_bounds`], the range of a prefix.

use std::ops::{Bound, Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

/// A range of keys: what `range`, `range_at` and `changes` take.
///
/// Implemented for every std range over anything that is `AsRef<[u8]>` (byte strings, byte
/// arrays, `&[u8]`, `Vec<u8>`, `&str`, `String`, [`Slice`](crate::Slice)), for `..`, and for a
/// pair of [`Bound`]s. Unlike `RangeBounds<K>` with a generic `K`, `..` needs no annotation.
///
/// ```
/// # fn main() -> zverse::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// use std::ops::Bound;
/// let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
/// for key in ["a", "b", "c"] {
///     db.put(key.as_bytes(), b"")?;
/// }
/// assert_eq!(db.range(b"a"..b"c")?.count(), 2);
/// assert_eq!(db.range("a"..="c")?.count(), 3);
/// assert_eq!(db.range(vec![b'b']..)?.count(), 2);
/// assert_eq!(db.range(..[b'b'])?.count(), 1);
/// assert_eq!(db.range(b"a".as_slice()..)?.count(), 3);
/// assert_eq!(db.range((Bound::Excluded("a"), Bound::Unbounded))?.count(), 2);
/// assert_eq!(db.range(..)?.count(), 3);
/// # Ok(())
/// # }
/// ```
pub trait KeyRange {
    /// Where the range starts.
    fn start_key(&self) -> Bound<&[u8]>;
    /// Where the range ends.
    fn end_key(&self) -> Bound<&[u8]>;
}

impl KeyRange for RangeFull {
    fn start_key(&self) -> Bound<&[u8]> {
        Bound::Unbounded
    }
    fn end_key(&self) -> Bound<&[u8]> {
        Bound::Unbounded
    }
}

impl<K: AsRef<[u8]>> KeyRange for Range<K> {
    fn start_key(&self) -> Bound<&[u8]> {
        Bound::Included(self.start.as_ref())
    }
    fn end_key(&self) -> Bound<&[u8]> {
        Bound::Excluded(self.end.as_ref())
    }
}

impl<K: AsRef<[u8]>> KeyRange for RangeInclusive<K> {
    fn start_key(&self) -> Bound<&[u8]> {
        Bound::Included(self.start().as_ref())
    }
    fn end_key(&self) -> Bound<&[u8]> {
        Bound::Included(self.end().as_ref())
    }
}

impl<K: AsRef<[u8]>> KeyRange for RangeFrom<K> {
    fn start_key(&self) -> Bound<&[u8]> {
        Bound::Included(self.start.as_ref())
    }
    fn end_key(&self) -> Bound<&[u8]> {
        Bound::Unbounded
    }
}

impl<K: AsRef<[u8]>> KeyRange for RangeTo<K> {
    fn start_key(&self) -> Bound<&[u8]> {
        Bound::Unbounded
    }
    fn end_key(&self) -> Bound<&[u8]> {
        Bound::Excluded(self.end.as_ref())
    }
}

impl<K: AsRef<[u8]>> KeyRange for RangeToInclusive<K> {
    fn start_key(&self) -> Bound<&[u8]> {
        Bound::Unbounded
    }
    fn end_key(&self) -> Bound<&[u8]> {
        Bound::Included(self.end.as_ref())
    }
}

impl<K: AsRef<[u8]>> KeyRange for (Bound<K>, Bound<K>) {
    fn start_key(&self) -> Bound<&[u8]> {
        self.0.as_ref().map(AsRef::as_ref)
    }
    fn end_key(&self) -> Bound<&[u8]> {
        self.1.as_ref().map(AsRef::as_ref)
    }
}

impl<R: KeyRange + ?Sized> KeyRange for &R {
    fn start_key(&self) -> Bound<&[u8]> {
        (**self).start_key()
    }
    fn end_key(&self) -> Bound<&[u8]> {
        (**self).end_key()
    }
}

/// The range of every key that starts with `prefix`: from `prefix` (included) to its
/// successor (excluded), the prefix with its trailing `0xff` bytes dropped and its last byte
/// incremented; unbounded above when there is no successor (`""`, `"\xff\xff"`).
///
/// ```
/// use std::ops::Bound;
/// assert_eq!(
///     zverse::prefix_bounds(b"ab\xff"),
///     (Bound::Included(b"ab\xff".to_vec()), Bound::Excluded(b"ac".to_vec())),
/// );
/// assert_eq!(zverse::prefix_bounds(b"\xff"), (Bound::Included(vec![0xff]), Bound::Unbounded));
/// ```
#[must_use]
pub fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut end = prefix.to_vec();
    while end.last() == Some(&0xff) {
        end.pop();
    }
    let end = match end.last_mut() {
        Some(last) => {
            *last += 1; // Not 0xff: the loop above dropped those.
            Bound::Excluded(end)
        }
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bounds_hold_exactly_the_keys_with_the_prefix() {
        let alphabet = [0x00, 0x01, 0xfe, 0xff];
        let mut keys = vec![Vec::new()];
        for len in 1..=3 {
            let mut next = Vec::new();
            for key in keys.iter().filter(|key| key.len() == len - 1) {
                for byte in alphabet {
                    let mut longer = key.clone();
                    longer.push(byte);
                    next.push(longer);
                }
            }
            keys.extend(next);
        }
        for prefix in &keys {
            let bounds = prefix_bounds(prefix);
            for key in &keys {
                let inside = std::ops::RangeBounds::contains(&bounds, key);
                assert_eq!(inside, key.starts_with(prefix), "{prefix:?} {key:?}");
            }
        }
    }
}
