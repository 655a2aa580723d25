use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::encoder::check_batch_len;
use super::*;
use crate::checksum::checksum;
use crate::limits::VALUE_LEN_MAX;

/// A record as the tests describe it: the ops and the kind they are encoded as.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Model {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
}

impl Model {
    fn kind(&self) -> RecordKind {
        match self {
            Model::Put(..) => RecordKind::Put,
            Model::Delete(_) => RecordKind::Delete,
            Model::Batch(_) => RecordKind::Batch,
        }
    }

    fn ops(&self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        match self {
            Model::Put(key, value) => vec![(key.clone(), Some(value.clone()))],
            Model::Delete(key) => vec![(key.clone(), None)],
            Model::Batch(ops) => ops.clone(),
        }
    }

    fn encode(&self, version: Version) -> Vec<u8> {
        let mut out = vec![0u8; 1 << 16];
        let len = match self {
            Model::Put(key, value) => encode_put_into(&mut out, version, key, value).unwrap(),
            Model::Delete(key) => encode_delete_into(&mut out, version, key).unwrap(),
            Model::Batch(ops) => {
                let mut batch = BatchEncoder::new(&mut out).unwrap();
                for (key, value) in ops {
                    match value {
                        Some(value) => batch.put(key, value).unwrap(),
                        None => batch.delete(key).unwrap(),
                    }
                }
                batch.finish(version).len()
            }
        };
        out.truncate(len);
        out
    }
}

fn decoded_ops(record: &Record<'_>) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    record.ops().map(|op| (op.key.to_vec(), op.value.map(<[u8]>::to_vec))).collect()
}

fn small_records() -> Vec<Model> {
    vec![
        Model::Put(b"key".to_vec(), b"value".to_vec()),
        Model::Put(Vec::new(), Vec::new()),
        Model::Delete(b"gone".to_vec()),
        Model::Delete(Vec::new()),
        Model::Batch(Vec::new()),
        Model::Batch(vec![
            (b"k1".to_vec(), Some(b"v1".to_vec())),
            (b"k2".to_vec(), None),
            (Vec::new(), Some(Vec::new())),
        ]),
    ]
}

fn bytes(len_max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=len_max)
}

fn model() -> impl Strategy<Value = Model> {
    let op = (bytes(24), proptest::option::of(bytes(48)));
    prop_oneof![
        (bytes(24), bytes(48)).prop_map(|(key, value)| Model::Put(key, value)),
        bytes(24).prop_map(Model::Delete),
        proptest::collection::vec(op, 0..20).prop_map(Model::Batch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(model in model(), version in any::<u64>(), tail in bytes(8)) {
        let version = Version::new(version);
        let mut encoded = model.encode(version);
        let record_len = encoded.len();
        encoded.extend_from_slice(&tail);
        let (record, consumed) = decode_from(&encoded).unwrap();
        prop_assert_eq!(consumed, record_len);
        prop_assert_eq!(record.kind(), model.kind());
        prop_assert_eq!(record.version(), version);
        prop_assert_eq!(record.op_count() as usize, model.ops().len());
        prop_assert_eq!(record.ops().len(), model.ops().len());
        prop_assert_eq!(decoded_ops(&record), model.ops());
        prop_assert_eq!(record.as_bytes(), &encoded[..record_len]);
        prop_assert!(record.entries().all(|entry| entry.version == version));
        let walked: Vec<_> = ops_of_encoded(&encoded)
            .unwrap()
            .map(|op| (op.key.to_vec(), op.value.map(<[u8]>::to_vec)))
            .collect();
        prop_assert_eq!(walked, model.ops());
    }

    #[test]
    fn rewritten_version_equals_encoding_at_it(
        model in model(),
        old in any::<u64>(),
        new in any::<u64>(),
    ) {
        let mut encoded = model.encode(Version::new(old));
        rewrite_version(&mut encoded, Version::new(new)).unwrap();
        prop_assert_eq!(&encoded, &model.encode(Version::new(new)));
        prop_assert_eq!(decode_from(&encoded).unwrap().0.version(), Version::new(new));
    }

}

proptest! {
    // Cheap cases: many of them.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in bytes(96)) {
        if let Ok((record, consumed)) = decode_from(&bytes) {
            prop_assert!(consumed <= bytes.len());
            prop_assert_eq!(record.ops().count(), record.op_count() as usize);
        }
        if let Some(ops) = ops_of_encoded(&bytes) {
            let _ = ops.count();
        }
    }

    /// Random bytes behind a valid header: the body checks never panic, and never pass unless
    /// the body is one a encoder could have written.
    #[test]
    fn arbitrary_bodies_never_panic(kind in 1u8..=3, body in bytes(64)) {
        let record = craft(FORMAT_VERSION, kind, &body);
        if let Ok((record, _)) = decode_from(&record) {
            let op = record.ops().next();
            let model = match (record.kind(), op.and_then(|op| op.value)) {
                (RecordKind::Batch, _) => Model::Batch(decoded_ops(&record)),
                (_, Some(value)) => Model::Put(op.unwrap().key.to_vec(), value.to_vec()),
                (_, None) => Model::Delete(op.unwrap().key.to_vec()),
            };
            prop_assert_eq!(model.encode(record.version()), record.as_bytes());
        }
    }
}

#[cfg(feature = "alloc")]
proptest! {
    #[test]
    fn batch_builder_equals_batch_encoder(ops in proptest::collection::vec(
        (bytes(8), proptest::option::of(bytes(8))), 0..8), stale in bytes(64), reuse: bool
    ) {
        // A reused buffer's old bytes (`stale`) never reach the record.
        let mut builder =
            if reuse { BatchBuilder::in_buffer(stale) } else { BatchBuilder::new() };
        for (key, value) in &ops {
            match value {
                Some(value) => builder.put(key, value).unwrap(),
                None => builder.delete(key).unwrap(),
            }
        }
        prop_assert_eq!(builder.op_count() as usize, ops.len());
        let encoded = Model::Batch(ops).encode(Version::MAX);
        prop_assert_eq!(builder.encoded_len(), encoded.len());
        prop_assert_eq!(builder.finish(Version::MAX), encoded);
    }
}

/// A record of `kind` and `body` whose checksums are right, so the decoder's later checks run.
fn craft(format: u8, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut record = vec![0u8; HEADER_LEN];
    record[BODY_LEN_OFFSET..FORMAT_OFFSET].copy_from_slice(&(body.len() as u32).to_le_bytes());
    record[FORMAT_OFFSET] = format;
    record[KIND_OFFSET] = kind;
    record[VERSION_OFFSET..BODY_CHECKSUM_OFFSET].copy_from_slice(&42u64.to_le_bytes());
    record[BODY_CHECKSUM_OFFSET..].copy_from_slice(&checksum(body).to_le_bytes());
    let header_checksum = checksum(&record[BODY_LEN_OFFSET..]);
    record[..BODY_LEN_OFFSET].copy_from_slice(&header_checksum.to_le_bytes());
    record.extend_from_slice(body);
    record
}

#[test]
fn header_layout_is_as_documented() {
    let encoded = Model::Put(b"k".to_vec(), b"vv".to_vec()).encode(Version::new(0x0102));
    assert_eq!(encoded.len(), HEADER_LEN + PUT_FIXED_LEN + 3);
    assert_eq!(&encoded[BODY_LEN_OFFSET..FORMAT_OFFSET], &9u32.to_le_bytes());
    assert_eq!(encoded[FORMAT_OFFSET], FORMAT_VERSION);
    assert_eq!(encoded[KIND_OFFSET], RecordKind::Put as u8);
    assert_eq!(&encoded[VERSION_OFFSET..BODY_CHECKSUM_OFFSET], &0x0102u64.to_le_bytes());
    let body = &encoded[HEADER_LEN..];
    assert_eq!(body, b"\x01\x00\x02\x00\x00\x00kvv");
    assert_eq!(&encoded[BODY_CHECKSUM_OFFSET..HEADER_LEN], &checksum(body).to_le_bytes());
    let header_checksum = checksum(&encoded[BODY_LEN_OFFSET..HEADER_LEN]);
    assert_eq!(&encoded[..BODY_LEN_OFFSET], &header_checksum.to_le_bytes());
}

#[test]
fn every_bit_flip_is_corruption() {
    for model in small_records() {
        let encoded = model.encode(Version::new(7));
        for bit in 0..encoded.len() * 8 {
            let mut flipped = encoded.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let result = decode_from(&flipped);
            assert!(
                matches!(result, Err(DecodeError::Corrupt(_))),
                "{model:?} bit {bit}: {result:?}"
            );
        }
    }
}

#[test]
fn every_truncation_is_incomplete() {
    for model in small_records() {
        let encoded = model.encode(Version::new(7));
        for len in 0..encoded.len() {
            let prefix = &encoded[..len];
            let needed = if len < HEADER_LEN { HEADER_LEN - len } else { encoded.len() - len };
            let expected = if !prefix.is_empty() && prefix.iter().all(|&byte| byte == 0) {
                DecodeError::Zeroed
            } else {
                DecodeError::Incomplete { needed }
            };
            assert_eq!(decode_from(prefix), Err(expected), "{model:?} cut to {len}");
        }
    }
}

#[test]
fn rewrite_version_checks_the_header() {
    let mut zeros = [0u8; HEADER_LEN];
    assert_eq!(rewrite_version(&mut zeros, Version::new(1)), Err(DecodeError::Zeroed));
    let mut encoded = Model::Delete(b"k".to_vec()).encode(Version::new(1));
    encoded[BODY_LEN_OFFSET] ^= 1;
    let damaged = encoded.clone();
    assert!(matches!(rewrite_version(&mut encoded, Version::new(2)), Err(DecodeError::Corrupt(_))));
    assert_eq!(encoded, damaged, "nothing written");
}

#[test]
fn zeros_are_no_record() {
    for len in [1, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 1, 4096] {
        assert_eq!(decode_from(&vec![0u8; len]), Err(DecodeError::Zeroed), "{len} zeros");
    }
    assert_eq!(decode_from(&[]), Err(DecodeError::Incomplete { needed: HEADER_LEN }));
}

/// Headers with right checksums and wrong fields, and bodies that do not add up.
#[test]
fn decoder_checks_every_field() {
    let cases: [(Vec<u8>, u64, &str); 10] = [
        (craft(2, 1, &[0; 6]), 12, "unknown record format version"),
        (craft(FORMAT_VERSION, 0, &[0; 6]), 13, "unknown record kind"),
        (craft(FORMAT_VERSION, 4, &[0; 6]), 13, "unknown record kind"),
        (craft(FORMAT_VERSION, 1, &[0; 5]), 8, "record body length out of range for its kind"),
        (craft(FORMAT_VERSION, 2, &[0; 1]), 8, "record body length out of range for its kind"),
        (craft(FORMAT_VERSION, 2, &[1, 0]), 30, "op runs past the end of the record body"),
        (craft(FORMAT_VERSION, 2, &[0, 0, 9]), 32, "record body has bytes after its last op"),
        (craft(FORMAT_VERSION, 1, &[0, 0, 1, 0, 0, 4]), 30, "value length above the limit"),
        (craft(FORMAT_VERSION, 3, &[1, 0, 0, 0, 3, 0, 0]), 34, "unknown batch op kind"),
        (
            craft(FORMAT_VERSION, 3, &[2, 0, 0, 0, 2, 0, 0]),
            37,
            "op runs past the end of the record body",
        ),
    ];
    for (record, offset, what) in cases {
        let expected = DecodeError::Corrupt(Corruption::new(offset, what));
        assert_eq!(decode_from(&record), Err(expected), "{record:?}");
    }
    let too_long = with_body_len(craft(FORMAT_VERSION, 2, &[0, 0]), DELETE_BODY_LEN_MAX + 1);
    let expected = Corruption::new(8, "record body length out of range for its kind");
    assert_eq!(decode_from(&too_long), Err(DecodeError::Corrupt(expected)));
}

/// A verified header's length is trusted: the largest put, cut after its header, is a torn
/// tail, however large.
#[test]
fn largest_body_cut_short_is_incomplete() {
    let header_only = with_body_len(craft(FORMAT_VERSION, 1, &[]), PUT_BODY_LEN_MAX);
    let expected = DecodeError::Incomplete { needed: PUT_BODY_LEN_MAX };
    assert_eq!(decode_from(&header_only), Err(expected));
}

/// `record` with its header's body length set to `body_len` and its header checksum redone.
fn with_body_len(mut record: Vec<u8>, body_len: usize) -> Vec<u8> {
    let body_len = u32::try_from(body_len).unwrap();
    record[BODY_LEN_OFFSET..FORMAT_OFFSET].copy_from_slice(&body_len.to_le_bytes());
    let header_checksum = checksum(&record[BODY_LEN_OFFSET..HEADER_LEN]);
    record[..BODY_LEN_OFFSET].copy_from_slice(&header_checksum.to_le_bytes());
    record
}

#[test]
fn largest_key_accepted_larger_refused_and_nothing_written() {
    let key = vec![b'k'; KEY_LEN_MAX + 1];
    let (key_max, key_over) = (&key[..KEY_LEN_MAX], &key[..]);
    let mut out = vec![0xAA; 2 * KEY_LEN_MAX];

    let len = encode_put_into(&mut out, Version::new(1), key_max, b"v").unwrap();
    let (record, _) = decode_from(&out[..len]).unwrap();
    assert_eq!(record.ops().next().unwrap().key, key_max);
    let len = encode_delete_into(&mut out, Version::new(1), key_max).unwrap();
    assert_eq!(decode_from(&out[..len]).unwrap().0.ops().next().unwrap().key, key_max);

    let refused = EncodeError::Limit(LimitError::KeyTooLarge { len: KEY_LEN_MAX + 1 });
    let mut untouched = vec![0xAA; 2 * KEY_LEN_MAX];
    assert_eq!(encode_put_into(&mut untouched, Version::new(1), key_over, b""), Err(refused));
    assert_eq!(encode_delete_into(&mut untouched, Version::new(1), key_over), Err(refused));
    let mut batch = BatchEncoder::new(&mut untouched).unwrap();
    assert_eq!(batch.put(key_over, b""), Err(refused));
    assert_eq!(batch.delete(key_over), Err(refused));
    assert_eq!((batch.op_count(), batch.encoded_len()), (0, BATCH_EMPTY_LEN));
    assert!(untouched.iter().all(|&byte| byte == 0xAA));
}

#[test]
fn values_above_the_limit_refused_before_buffer_size() {
    // `vec![0; n]` maps zeroed pages lazily: the 64 MiB are never touched.
    let value = vec![0u8; VALUE_LEN_MAX + 1];
    let (value_max, value_over) = (&value[..VALUE_LEN_MAX], &value[..]);
    assert_eq!(
        encoded_len_put(b"k", value_max),
        Ok(HEADER_LEN + PUT_FIXED_LEN + 1 + VALUE_LEN_MAX)
    );
    let refused = LimitError::ValueTooLarge { len: VALUE_LEN_MAX + 1 };
    assert_eq!(encoded_len_put(b"k", value_over), Err(refused));
    let mut out = [0xAA; 64];
    assert_eq!(encode_put_into(&mut out, Version::new(1), b"k", value_over), Err(refused.into()));
    let mut batch = BatchEncoder::new(&mut out).unwrap();
    assert_eq!(batch.put(b"k", value_over), Err(refused.into()));
    let too_small = EncodeError::BufferTooSmall {
        buffer_len: 64,
        len_needed: BATCH_EMPTY_LEN + 8 + VALUE_LEN_MAX,
    };
    assert_eq!(batch.put(b"k", value_max), Err(too_small));
    assert_eq!(batch.encoded_len(), BATCH_EMPTY_LEN);
    assert!(out[BATCH_EMPTY_LEN..].iter().all(|&byte| byte == 0xAA));
}

#[test]
fn batch_record_length_is_bounded() {
    assert_eq!(check_batch_len(BATCH_EMPTY_LEN, 8), Ok(BATCH_EMPTY_LEN + 8));
    assert_eq!(check_batch_len(RECORD_LEN_MAX - 8, 8), Ok(RECORD_LEN_MAX));
    let refused = LimitError::TooLarge {
        what: "batch record",
        len: RECORD_LEN_MAX as u64 + 1,
        len_max: RECORD_LEN_MAX as u64,
    };
    assert_eq!(check_batch_len(RECORD_LEN_MAX - 8, 9), Err(refused));
    assert!(check_batch_len(usize::MAX, 1).is_err());
}

#[test]
fn small_buffers_refused_and_untouched() {
    let needed = encoded_len_put(b"key", b"value").unwrap();
    let mut out = vec![0xAA; needed - 1];
    let too_small = EncodeError::BufferTooSmall { buffer_len: needed - 1, len_needed: needed };
    assert_eq!(encode_put_into(&mut out, Version::new(1), b"key", b"value"), Err(too_small));
    assert!(out.iter().all(|&byte| byte == 0xAA));
    let mut out = [0u8; BATCH_EMPTY_LEN - 1];
    assert!(matches!(BatchEncoder::new(&mut out), Err(EncodeError::BufferTooSmall { .. })));
}
