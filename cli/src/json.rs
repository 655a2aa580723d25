//! Keys and values in JSON output (`--json`, `dump`, `changes --json`), in one reversible form:
//! bytes that are valid UTF-8 are a JSON string as they are (`"café"`), any other bytes an
//! object `{"base64": "..."}` (standard alphabet, with padding). `decode` takes back exactly
//! what `encode` gives, so `jq` reads the common case and nothing is lost in the rest.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// The key of the object that carries bytes that are not UTF-8.
const BASE64_KEY: &str = "base64";

/// `bytes` as a JSON value: a string if they are UTF-8, else `{"base64": ...}`.
pub fn encode(bytes: &[u8]) -> Value {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Value::String(text.to_owned());
    }
    let mut object = Map::with_capacity(1);
    object.insert(BASE64_KEY.to_owned(), Value::String(STANDARD.encode(bytes)));
    Value::Object(object)
}

/// The bytes `encode` turned into `value`, or what is wrong with it.
pub fn decode(value: &Value) -> Result<Vec<u8>, String> {
    match value {
        Value::String(text) => Ok(text.as_bytes().to_vec()),
        Value::Object(object) if object.len() == 1 => match object.get(BASE64_KEY) {
            Some(Value::String(text)) => {
                STANDARD.decode(text).map_err(|error| format!("bad base64 in {value}: {error}"))
            }
            _ => Err(format!("expected {{\"{BASE64_KEY}\": STRING}}, found {value}")),
        },
        _ => Err(format!("expected a string or {{\"{BASE64_KEY}\": STRING}}, found {value}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], expected: &str) {
        let value = encode(bytes);
        assert_eq!(value.to_string(), expected);
        assert_eq!(decode(&value).unwrap(), bytes);
    }

    #[test]
    fn utf8_is_a_plain_string() {
        check(b"", r#""""#);
        check("café".as_bytes(), r#""café""#);
        check(b"a\"b\\c\n", r#""a\"b\\c\n""#);
    }

    #[test]
    fn other_bytes_are_base64() {
        check(&[0xff, 0x00], r#"{"base64":"/wA="}"#);
        check(b"caf\xc3", r#"{"base64":"Y2Fmww=="}"#);
    }

    #[test]
    fn every_single_byte_round_trips() {
        for byte in 0..=u8::MAX {
            assert_eq!(decode(&encode(&[byte])).unwrap(), [byte]);
        }
    }

    #[test]
    fn refuses_other_shapes() {
        for text in ["1", "null", r#"{"base64":1}"#, r#"{"hex":"00"}"#, r#"{"base64":"!!"}"#] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert!(decode(&value).is_err(), "{text}");
        }
    }
}
