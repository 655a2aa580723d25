//! Errors shared by the core's encoders and decoders.

use core::fmt;

/// Input refused by an encoder because it exceeds a limit in [`crate::limits`]. Nothing was
/// written when this is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// The key is longer than [`crate::limits::KEY_LEN_MAX`].
    KeyTooLarge {
        /// The key's length in bytes.
        len: usize,
    },
    /// The value is longer than [`crate::limits::VALUE_LEN_MAX`].
    ValueTooLarge {
        /// The value's length in bytes.
        len: usize,
    },
    /// A batch, record or segment would exceed a size limit of its format.
    TooLarge {
        /// What would have been too large.
        what: &'static str,
        /// How large it would have been, in bytes.
        len: u64,
        /// The largest allowed, in bytes.
        len_max: u64,
    },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LimitError::KeyTooLarge { len } => write!(
                f,
                "key of {len} bytes exceeds the limit of {} bytes",
                crate::limits::KEY_LEN_MAX
            ),
            LimitError::ValueTooLarge { len } => write!(
                f,
                "value of {len} bytes exceeds the limit of {} bytes",
                crate::limits::VALUE_LEN_MAX
            ),
            LimitError::TooLarge { what, len, len_max } => {
                write!(f, "{what} of {len} bytes exceeds the limit of {len_max} bytes")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LimitError {}

/// Bytes that do not decode: a checksum mismatch, a length that runs past the end, an unknown
/// format version. `offset` is relative to the start of the buffer the decoder was given; the
/// runtime adds the file name and the buffer's position in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// Byte offset, within the decoded buffer, of the structure that failed to decode.
    pub offset: u64,
    /// What was wrong, as a short static phrase ("record checksum mismatch").
    pub what: &'static str,
}

impl Corruption {
    /// A corruption at `offset`.
    #[must_use]
    pub const fn new(offset: u64, what: &'static str) -> Corruption {
        Corruption { offset, what }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corruption at offset {}: {}", self.offset, self.what)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Corruption {}
