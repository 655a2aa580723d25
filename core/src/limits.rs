//! The limits on what a caller may store, checked by every encoder before it writes a byte.

use crate::error::LimitError;

/// The longest key, in bytes. Keys are stored with a `u16` length.
pub const KEY_LEN_MAX: usize = u16::MAX as usize;

/// The longest value, in bytes: 64 MiB. Values are stored with a `u32` length; the limit is
/// far below `u32::MAX` so that a record, a batch and a segment block always fit in `u32`
/// lengths with room to spare.
pub const VALUE_LEN_MAX: usize = 64 << 20;

/// Checks a key's length against [`KEY_LEN_MAX`].
pub const fn check_key(key: &[u8]) -> Result<(), LimitError> {
    if key.len() > KEY_LEN_MAX {
        return Err(LimitError::KeyTooLarge { len: key.len() });
    }
    Ok(())
}

/// Checks a value's length against [`VALUE_LEN_MAX`].
pub const fn check_value(value: &[u8]) -> Result<(), LimitError> {
    if value.len() > VALUE_LEN_MAX {
        return Err(LimitError::ValueTooLarge { len: value.len() });
    }
    Ok(())
}

const _: () = assert!(KEY_LEN_MAX <= u16::MAX as usize);
const _: () = assert!(VALUE_LEN_MAX <= (u32::MAX as usize) / 4);
