//! [`BoxScan`]: walks a sorted run in Z order and visits only the entries whose `M` lies in a
//! [`ZBox`], jumping with BIGMIN over the runs of codes that leave the box.

use super::ZBox;

/// A run of entries sorted ascending by `(M, key)` that can be positioned by Morton code.
pub trait ZCursor {
    /// What can go wrong while moving (a checksum failure in a segment block).
    type Error;

    /// `M` of the entry under the cursor, or `None` past the end.
    fn morton(&self) -> Option<u128>;

    /// Moves to the next entry.
    fn step(&mut self) -> Result<(), Self::Error>;

    /// Moves forward to the first entry with `M >= target`; never moves backward.
    fn seek(&mut self, target: u128) -> Result<(), Self::Error>;
}

/// Counters of a scan's work, to compare against the entries it returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Entries whose `M` the scan examined.
    pub entries_touched: u64,
    /// BIGMIN jumps the scan made.
    pub seeks: u64,
}

/// Drives a [`ZCursor`] through the entries of a [`ZBox`], in Z order.
#[derive(Debug)]
pub struct BoxScan<C> {
    cursor: C,
    zbox: ZBox,
    started: bool,
    /// Set once `advance` has returned `false`: later calls return `false` at once instead of
    /// stepping past the box again.
    finished: bool,
    stats: ScanStats,
}

impl<C: ZCursor> BoxScan<C> {
    /// A scan of `zbox` over `cursor`, which should be at the run's start.
    pub fn new(cursor: C, zbox: ZBox) -> BoxScan<C> {
        BoxScan { cursor, zbox, started: false, finished: false, stats: ScanStats::default() }
    }

    /// Moves to the next entry whose `M` is in the box and returns `true`, or returns `false`
    /// at the end, and at every call after that. The entry is then read through
    /// [`BoxScan::cursor`].
    pub fn advance(&mut self) -> Result<bool, C::Error> {
        if self.finished {
            return Ok(false);
        }
        if self.started {
            self.cursor.step()?;
        } else {
            self.started = true;
            self.seek(self.zbox.morton_min())?;
        }
        while let Some(morton) = self.cursor.morton() {
            self.stats.entries_touched += 1;
            if self.zbox.contains(morton) {
                return Ok(true);
            }
            // Out of the box: jump to the next code that is back in it. `morton` is outside,
            // so BIGMIN is strictly greater and the scan always moves forward.
            let next = self.zbox.next_at_or_after(morton);
            assert!(next.is_none_or(|next| next > morton), "BIGMIN of an outside code moved back");
            match next {
                Some(next) => self.seek(next)?,
                None => break,
            }
        }
        self.finished = true;
        Ok(false)
    }

    fn seek(&mut self, target: u128) -> Result<(), C::Error> {
        self.stats.seeks += 1;
        self.cursor.seek(target)?;
        // The scan ends because each seek lands past the code that caused it. A cursor over a
        // run that is not sorted could break that; its reader must refuse such a run.
        debug_assert!(
            self.cursor.morton().is_none_or(|morton| morton >= target),
            "ZCursor::seek stopped below its target: is the run sorted?"
        );
        Ok(())
    }

    /// The cursor, positioned on the current in-box entry after [`BoxScan::advance`] returned
    /// `true`.
    pub fn cursor(&self) -> &C {
        &self.cursor
    }

    /// The work done so far.
    pub fn stats(&self) -> ScanStats {
        self.stats
    }
}

/// A [`ZCursor`] over a slice sorted by `M`, seeking by binary search.
#[derive(Debug)]
pub struct SliceCursor<'a, T, F> {
    items: &'a [T],
    position: usize,
    morton_of: F,
}

impl<'a, T, F: Fn(&T) -> u128> SliceCursor<'a, T, F> {
    /// A cursor at the start of `items`, which must be sorted ascending by `morton_of`.
    pub fn new(items: &'a [T], morton_of: F) -> SliceCursor<'a, T, F> {
        SliceCursor { items, position: 0, morton_of }
    }

    /// The item under the cursor.
    pub fn current(&self) -> Option<&'a T> {
        self.items.get(self.position)
    }
}

impl<T, F: Fn(&T) -> u128> ZCursor for SliceCursor<'_, T, F> {
    type Error = core::convert::Infallible;

    fn morton(&self) -> Option<u128> {
        self.current().map(&self.morton_of)
    }

    fn step(&mut self) -> Result<(), Self::Error> {
        self.position = (self.position + 1).min(self.items.len());
        Ok(())
    }

    fn seek(&mut self, target: u128) -> Result<(), Self::Error> {
        let rest = self.items.get(self.position..).unwrap_or_default();
        self.position += rest.partition_point(|item| (self.morton_of)(item) < target);
        Ok(())
    }
}
