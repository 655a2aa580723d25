//! Checked little-endian bytes: every on-disk format of the core reads and writes its integers
//! through this module, so a short buffer is a typed error or `None`, never a panic, and a
//! field is written the same way in every format.
//!
//! Two ways to read, one to write:
//! - [`Reader`], a cursor for formats decoded front to back (record and log frame headers,
//!   the log file header, the segment footer, the manifest): each read takes the next field,
//!   and bytes that end too early are a [`Corruption`] at the field's offset;
//! - `*_at` (`u32_at`, `u64_at`, ...), random access by offset for the segment's sections,
//!   which are searched in place in a mapped file and never read front to back;
//! - [`Writer`], fields appended in order to a [`Sink`]: a `Vec<u8>`, a caller's buffer
//!   ([`SliceSink`]), or the engine's segment file. [`fill_slot`] writes a fixed layout
//!   into a slot of exactly its size.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

#[cfg(feature = "alloc")]
use alloc::vec::Vec;
use core::fmt;

use crate::error::Corruption;

/// The `N` bytes at `at`, or `None` when they run past the end of `bytes`.
#[must_use]
#[inline]
pub fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    bytes.get(at..end)?.try_into().ok()
}

/// The little-endian `u16` at `at`.
#[must_use]
#[inline]
pub fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    array_at(bytes, at).map(u16::from_le_bytes)
}

/// The little-endian `u32` at `at`.
#[must_use]
#[inline]
pub fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    array_at(bytes, at).map(u32::from_le_bytes)
}

/// The little-endian `u64` at `at`.
#[must_use]
#[inline]
pub fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    array_at(bytes, at).map(u64::from_le_bytes)
}

/// The little-endian `u128` at `at`.
#[must_use]
#[inline]
pub fn u128_at(bytes: &[u8], at: usize) -> Option<u128> {
    array_at(bytes, at).map(u128::from_le_bytes)
}

/// The `len` bytes at `at`.
#[must_use]
#[inline]
pub fn slice_at(bytes: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(len)?)
}

/// A cursor that decodes fields front to back from untrusted bytes.
///
/// Every read is bounds-checked: when the bytes end before the field does, the read returns
/// `Corruption { offset, what }` with `offset` where the field starts and `what` the phrase
/// the reader was made with, and the cursor does not move.
///
/// ```
/// # use zverse_core::bytes::Reader;
/// let mut reader = Reader::new(&[1, 0, 0, 0, 7], "header truncated");
/// assert_eq!(reader.u32(), Ok(1));
/// assert_eq!(reader.u8(), Ok(7));
/// assert_eq!(reader.u16().unwrap_err().offset, 5);
/// ```
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    truncated: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`; `truncated` names the error of a read past the end.
    #[must_use]
    pub const fn new(bytes: &'a [u8], truncated: &'static str) -> Reader<'a> {
        Reader { bytes, position: 0, truncated }
    }

    /// Offset of the next field from the start of the bytes.
    #[must_use]
    pub const fn position(&self) -> usize {
        self.position
    }

    /// The bytes not read yet.
    #[must_use]
    pub fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.position..).unwrap_or_default()
    }

    /// Whether every byte has been read.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    /// A corruption at the next field's offset.
    #[must_use]
    pub const fn corruption(&self, what: &'static str) -> Corruption {
        Corruption::new(self.position as u64, what)
    }

    /// The next `len` bytes.
    #[inline]
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], Corruption> {
        let taken = slice_at(self.bytes, self.position, len);
        let taken = taken.ok_or_else(|| self.corruption(self.truncated))?;
        self.position += len;
        Ok(taken)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Corruption> {
        let taken = array_at(self.bytes, self.position);
        let taken = taken.ok_or_else(|| self.corruption(self.truncated))?;
        self.position += N;
        Ok(taken)
    }

    /// The next byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, Corruption> {
        self.array().map(u8::from_le_bytes)
    }

    /// The next little-endian `u16`.
    #[inline]
    pub fn u16(&mut self) -> Result<u16, Corruption> {
        self.array().map(u16::from_le_bytes)
    }

    /// The next little-endian `u32`.
    #[inline]
    pub fn u32(&mut self) -> Result<u32, Corruption> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next little-endian `u64`.
    #[inline]
    pub fn u64(&mut self) -> Result<u64, Corruption> {
        self.array().map(u64::from_le_bytes)
    }

    /// The next little-endian `u128`.
    #[inline]
    pub fn u128(&mut self) -> Result<u128, Corruption> {
        self.array().map(u128::from_le_bytes)
    }
}

/// An append-only byte destination: a `Vec<u8>`, a caller's buffer ([`SliceSink`]), or (in
/// the engine) a segment file.
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

    /// Bytes left in the buffer.
    #[must_use]
    pub fn available_len(&self) -> usize {
        self.buffer.len() - self.written_len
    }
}

impl Sink for SliceSink<'_> {
    type Error = SliceFull;

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SliceFull> {
        let full = SliceFull { needed_len: bytes.len(), available_len: self.available_len() };
        let end = self.written_len.checked_add(bytes.len()).ok_or(full)?;
        let destination = self.buffer.get_mut(self.written_len..end).ok_or(full)?;
        destination.copy_from_slice(bytes);
        self.written_len = end;
        Ok(())
    }
}

/// Appends fields, little-endian, to a [`Sink`]. Each write returns the writer, so fields
/// chain: `writer.u32(len)?.u8(kind)?.bytes(key)?`.
#[derive(Debug)]
pub struct Writer<S> {
    sink: S,
}

impl<S: Sink> Writer<S> {
    /// A writer appending to `sink`.
    pub const fn new(sink: S) -> Writer<S> {
        Writer { sink }
    }

    /// The sink, with everything written so far.
    pub fn into_sink(self) -> S {
        self.sink
    }

    /// Appends `bytes` as they are.
    #[inline]
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<&mut Writer<S>, S::Error> {
        self.sink.write_all(bytes)?;
        Ok(self)
    }

    /// Appends one byte.
    #[inline]
    pub fn u8(&mut self, value: u8) -> Result<&mut Writer<S>, S::Error> {
        self.bytes(&[value])
    }

    /// Appends a little-endian `u16`.
    #[inline]
    pub fn u16(&mut self, value: u16) -> Result<&mut Writer<S>, S::Error> {
        self.bytes(&value.to_le_bytes())
    }

    /// Appends a little-endian `u32`.
    #[inline]
    pub fn u32(&mut self, value: u32) -> Result<&mut Writer<S>, S::Error> {
        self.bytes(&value.to_le_bytes())
    }

    /// Appends a little-endian `u64`.
    #[inline]
    pub fn u64(&mut self, value: u64) -> Result<&mut Writer<S>, S::Error> {
        self.bytes(&value.to_le_bytes())
    }

    /// Appends a little-endian `u128`.
    #[inline]
    pub fn u128(&mut self, value: u128) -> Result<&mut Writer<S>, S::Error> {
        self.bytes(&value.to_le_bytes())
    }
}

/// Writes a fixed layout into `slot`, which it must fill exactly: a layout that does not fit
/// its slot, or leaves part of it unwritten, is a bug in the format's code, so both panic.
pub fn fill_slot(
    slot: &mut [u8],
    write: impl FnOnce(&mut Writer<SliceSink<'_>>) -> Result<(), SliceFull>,
) {
    let mut writer = Writer::new(SliceSink::new(slot));
    let written = write(&mut writer);
    assert!(written.is_ok(), "a fixed layout overflows its slot: {written:?}");
    let left = writer.into_sink().available_len();
    assert!(left == 0, "a fixed layout leaves {left} bytes of its slot unwritten");
}

/// `bytes` in lowercase hex, for tests that pin a format's bytes.
#[cfg(all(test, feature = "alloc"))]
pub(crate) fn hex(bytes: &[u8]) -> alloc::string::String {
    use core::fmt::Write as _;
    bytes.iter().fold(alloc::string::String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// The bytes of lowercase hex (whitespace skipped), for tests that pin a format's bytes.
#[cfg(all(test, feature = "alloc"))]
pub(crate) fn unhex(text: &str) -> alloc::vec::Vec<u8> {
    let digits: alloc::vec::Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| u8::try_from(char::from(b).to_digit(16).expect("hex digit")).expect("a digit"))
        .collect();
    digits
        .chunks_exact(2)
        .map(|pair| pair.iter().fold(0, |byte, digit| byte << 4 | digit))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_reader_reads_fields_in_order_and_refuses_short_input_where_it_starts() {
        let bytes = [1, 2, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut reader = Reader::new(&bytes, "short");
        assert_eq!(reader.u8(), Ok(1));
        assert_eq!(reader.u16(), Ok(2));
        assert_eq!(reader.u32(), Ok(3));
        assert_eq!(reader.u64(), Ok(4));
        assert_eq!(reader.position(), 15);
        assert_eq!(reader.u16(), Err(Corruption::new(15, "short")));
        assert_eq!(reader.position(), 15, "a failed read does not move the cursor");
        assert_eq!(reader.rest(), &[9]);
        assert_eq!(reader.take(1), Ok(&[9][..]));
        assert!(reader.is_empty());
        assert_eq!(reader.take(usize::MAX), Err(Corruption::new(16, "short")));
        assert_eq!(Reader::new(&[], "short").u128(), Err(Corruption::new(0, "short")));
    }

    #[test]
    fn random_access_reads_are_none_past_the_end() {
        let bytes = [1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(u64_at(&bytes, 0), Some(1));
        assert_eq!(u32_at(&bytes, 5), None);
        assert_eq!(u16_at(&bytes, usize::MAX), None);
        assert_eq!(slice_at(&bytes, 7, usize::MAX), None);
        assert_eq!(u128_at(&bytes, 0), None);
    }

    #[test]
    fn a_writer_writes_what_a_reader_reads() {
        let mut buffer = [0u8; 31];
        let mut writer = Writer::new(SliceSink::new(&mut buffer));
        writer.u8(1).unwrap().u16(2).unwrap().u32(3).unwrap().u64(4).unwrap().u128(5).unwrap();
        assert_eq!(writer.u8(6).err(), Some(SliceFull { needed_len: 1, available_len: 0 }));
        let mut reader = Reader::new(&buffer, "short");
        let fields = (reader.u8(), reader.u16(), reader.u32(), reader.u64(), reader.u128());
        assert_eq!(fields, (Ok(1), Ok(2), Ok(3), Ok(4), Ok(5)));
    }

    #[test]
    #[should_panic(expected = "unwritten")]
    fn a_slot_left_partly_unwritten_is_a_bug() {
        fill_slot(&mut [0u8; 4], |writer| writer.u16(1).map(drop));
    }

    #[test]
    #[should_panic(expected = "overflows")]
    fn a_layout_larger_than_its_slot_is_a_bug() {
        fill_slot(&mut [0u8; 4], |writer| writer.u64(1).map(drop));
    }
}
