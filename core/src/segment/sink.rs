//! [`Sink`]: where a [`super::SegmentBuilder`] writes the segment's bytes, in order.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;
use core::fmt;

/// An append-only byte destination: a `Vec<u8>`, a caller's buffer ([`SliceSink`]), or (in
/// the runtime) a file.
pub trait Sink {
    /// What can go wrong while writing.
    type Error;

    /// Appends all of `bytes`, or fails. After a failure the sink's contents are unspecified.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

impl<S: Sink + ?Sized> Sink for &mut S {
    type Error = S::Error;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        (**self).write_all(bytes)
    }
}

#[cfg(feature = "alloc")]
impl Sink for Vec<u8> {
    type Error = core::convert::Infallible;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// A [`Sink`] over a caller's fixed buffer.
#[derive(Debug)]
pub struct SliceSink<'a> {
    buffer: &'a mut [u8],
    written_len: usize,
}

/// A [`SliceSink`] refused a write that does not fit; nothing of that write was copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceFull {
    /// Bytes the refused write needed.
    pub needed_len: usize,
    /// Bytes that were left in the buffer.
    pub available_len: usize,
}

impl fmt::Display for SliceFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buffer full: {} bytes needed, {} left", self.needed_len, self.available_len)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SliceFull {}

impl<'a> SliceSink<'a> {
    /// An empty sink writing from the start of `buffer`.
    pub fn new(buffer: &'a mut [u8]) -> SliceSink<'a> {
        SliceSink { buffer, written_len: 0 }
    }

    /// The bytes written so far.
    #[must_use]
    pub fn written(&self) -> &[u8] {
        self.buffer.get(..self.written_len).unwrap_or_default()
    }

    /// The bytes written, for as long as the buffer lives.
    #[must_use]
    pub fn into_written(self) -> &'a [u8] {
        let buffer: &'a [u8] = self.buffer;
        buffer.get(..self.written_len).unwrap_or_default()
    }
}

impl Sink for SliceSink<'_> {
    type Error = SliceFull;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SliceFull> {
        let available_len = self.buffer.len() - self.written_len;
        let full = SliceFull { needed_len: bytes.len(), available_len };
        let end = self.written_len.checked_add(bytes.len()).ok_or(full)?;
        let destination = self.buffer.get_mut(self.written_len..end).ok_or(full)?;
        destination.copy_from_slice(bytes);
        self.written_len = end;
        Ok(())
    }
}
