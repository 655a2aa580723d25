//! [`Slice`]: the bytes a read returns, shared with the store instead of copied out of it.

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::memtable::MemBytes;
use crate::segment_file::MappedFile;

/// A key or value returned by a read. Derefs to `[u8]`.
///
/// Bytes read from a segment are not copied: the `Slice` points into the memory-mapped file
/// and keeps the segment alive (even past its compaction) until it is dropped. Bytes read
/// from the memtable share its allocation. Cloning a `Slice` never copies the bytes.
#[derive(Clone)]
pub struct Slice(Repr);

#[derive(Clone)]
enum Repr {
    Shared(Arc<[u8]>),
    Memtable(MemBytes),
    /// Bytes of a segment's mapping (a current or a history segment), kept as a pointer so
    /// that a read of them (every key comparison of a merge) is one load, not a walk through
    /// the segment to its mapping.
    Mapped {
        #[expect(dead_code, reason = "held, never read: it keeps the mapping alive")]
        segment: Arc<dyn Send + Sync>,
        bytes: NonNull<[u8]>,
    },
}

// SAFETY: `Mapped` bytes are immutable and live in the mapping its `Arc` keeps alive (a shared
// `&[u8]` would be `Send` and `Sync`); the other variants are `Send` and `Sync` themselves.
unsafe impl Send for Repr {}
// SAFETY: as for `Send`.
unsafe impl Sync for Repr {}

impl Slice {
    /// A value sharing `bytes`.
    pub(crate) fn shared(bytes: Arc<[u8]>) -> Slice {
        Slice(Repr::Shared(bytes))
    }

    /// A value sharing bytes of a memtable.
    pub(crate) fn memtable(bytes: MemBytes) -> Slice {
        Slice(Repr::Memtable(bytes))
    }

    /// A value pointing at `bytes`, which must lie inside `segment`'s mapped bytes.
    pub(crate) fn mapped<F: MappedFile>(segment: &Arc<F>, bytes: &[u8]) -> Slice {
        let base = segment.bytes();
        let start = (bytes.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        assert!(
            start <= base.len() && bytes.len() <= base.len() - start,
            "a mapped value must point into its segment"
        );
        let segment: Arc<dyn Send + Sync> = Arc::<F>::clone(segment);
        Slice(Repr::Mapped { segment, bytes: NonNull::from(bytes) })
    }

    /// The bytes, copied into a `Vec`.
    ///
    /// ```
    /// # fn main() -> zverse::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// # let db = zverse::Db::open(dir.path(), zverse::Options::default())?;
    /// db.put(b"k", b"v")?;
    /// let value: zverse::Slice = db.get(b"k")?.unwrap();
    /// assert_eq!(value.to_vec(), b"v".to_vec());
    /// assert_eq!(&value[..], b"v", "a Slice derefs to its bytes");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        self.deref().to_vec()
    }
}

impl Deref for Slice {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Shared(bytes) => bytes,
            Repr::Memtable(bytes) => bytes,
            // SAFETY: `Slice::mapped` checked that the bytes lie in the segment's mapping,
            // which never moves or changes, and is unmapped only when the segment drops,
            // after this `Arc` to it.
            Repr::Mapped { bytes, .. } => unsafe { bytes.as_ref() },
        }
    }
}

impl AsRef<[u8]> for Slice {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::borrow::Borrow<[u8]> for Slice {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.escape_ascii())
    }
}

impl PartialEq for Slice {
    fn eq(&self, other: &Slice) -> bool {
        **self == **other
    }
}

impl Eq for Slice {}

impl PartialEq<[u8]> for Slice {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for Slice {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Slice {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == other[..]
    }
}

impl PartialOrd for Slice {
    fn partial_cmp(&self, other: &Slice) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slice {
    fn cmp(&self, other: &Slice) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::hash::Hash for Slice {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl From<&[u8]> for Slice {
    fn from(bytes: &[u8]) -> Slice {
        Slice::shared(Arc::from(bytes))
    }
}

impl From<Vec<u8>> for Slice {
    fn from(bytes: Vec<u8>) -> Slice {
        Slice::shared(Arc::from(bytes))
    }
}
