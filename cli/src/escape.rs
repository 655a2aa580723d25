//! The escape form of keys and values on the command line and in dumps.
//!
//! Printable ASCII (`0x20..=0x7e`) stands for itself, except the backslash, which is `\\`;
//! every other byte is `\xNN` with two lowercase hex digits. The form is canonical (one
//! spelling per byte string) and lossless. Parsing also accepts `\xNN` for a printable byte
//! (`\x2e` for `.`, to put `..` inside a key range) and upper-case hex digits; anything else
//! after a backslash is an error.

use std::fmt::Write as _;

/// Escapes `bytes` into the canonical escape form.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out
}

/// Parses the escape form back into bytes. Non-ASCII characters stand for their UTF-8 bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte != b'\\' {
            out.push(byte);
            index += 1;
            continue;
        }
        match bytes.get(index + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                index += 2;
            }
            Some(b'x') => {
                let digits = bytes.get(index + 2..index + 4).ok_or_else(|| bad(text, index))?;
                out.push(hex_pair(digits).ok_or_else(|| bad(text, index))?);
                index += 4;
            }
            _ => return Err(bad(text, index)),
        }
    }
    Ok(out)
}

fn hex_pair(digits: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(digits).ok()?;
    if text.len() != 2 || !text.bytes().all(|digit| digit.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

fn bad(text: &str, index: usize) -> String {
    format!(
        "bad escape at byte {index} of {text:?}: write a backslash as \\\\ and any byte as \\xNN"
    )
}

#[cfg(test)]
mod tests {
    use super::{escape, unescape};

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(&escape(&all)).unwrap(), all);
        assert_eq!(escape(b"a\\b\n\xff"), "a\\\\b\\x0a\\xff");
    }

    #[test]
    fn rejects_bad_escapes() {
        for text in ["\\", "\\n", "\\x", "\\x4", "\\xg0", "a\\q"] {
            assert!(unescape(text).is_err(), "{text:?} must not parse");
        }
        assert_eq!(unescape("\\x2E\\x2e").unwrap(), b"..");
    }
}
