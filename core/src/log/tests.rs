#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use alloc::vec;
use alloc::vec::Vec;

use super::damage::classify;
use super::frame::{Decoded, decode_frame};
use super::*;
use crate::Version;
use crate::bytes::hex;
use crate::record::{DecodeError, encode_put_into};

const NONCE: u64 = 0x5EED;

/// A frame at `frame_offset` holding `body`.
fn frame(body: &[u8], frame_offset: usize, synced_offset: usize) -> Vec<u8> {
    let mut bytes = vec![0; FRAME_HEADER_LEN];
    bytes.extend_from_slice(body);
    seal_frame(&mut bytes, NONCE, frame_offset as u64, synced_offset as u64);
    bytes
}

fn intact(log: &[u8], offset: usize) -> Option<Frame<'_>> {
    match decode_frame(log, offset, NONCE) {
        Decoded::Frame(frame) => Some(frame),
        _ => None,
    }
}

/// Whether damage at `offset` is vouched for by a later frame (the log's last frame before
/// `offset` is not a seal).
fn damage(log: &[u8], offset: usize) -> Tail {
    classify(log, offset, NONCE, false)
}

/// The bytes the engine wrote before the codec moved into the core (captured from
/// `runtime-portable/src/log.rs` at 0759d69): the on-disk format did not change.
#[test]
fn bytes_are_those_the_engine_wrote_before_the_move() {
    assert_eq!(
        hex(&encode_log_header(0x0123_4567_89AB_CDEF)),
        "5a56455253454c47efcdab896745230184e9a4682e315a0b"
    );
    assert_eq!(
        hex(&frame(b"records", 64, 24)),
        "a641b7a412f9de0e0700000001000000400000000000000018000000000000002056b2ad8904a9f0\
         7265636f726473"
    );
    assert_eq!(
        hex(&seal(NONCE, 111, 64)),
        "4779e83b444a85f300000000010000006f000000000000004000000000000000c294d3380580062d"
    );
}

#[test]
fn the_rule_covers_every_case_once() {
    let tails = [Tail::SealedEnd, Tail::UnsealedEnd, Tail::Torn, Tail::TornSynced];
    let positions = [LogPosition::Older, LogPosition::Newest, LogPosition::NewestReadOnly];
    for tail in tails {
        for position in positions {
            let count = RULES.iter().filter(|r| r.tail == tail && r.position == position).count();
            assert_eq!(count, 1, "{tail:?} in a {position:?} log");
        }
    }
    assert_eq!(RULES.len(), tails.len() * positions.len());
    // The two promises the rule exists for.
    assert_eq!(verdict(Tail::Torn, LogPosition::Newest), Verdict::Truncate);
    for position in [LogPosition::Older, LogPosition::Newest] {
        assert!(matches!(verdict(Tail::TornSynced, position), Verdict::Corrupt(_)));
    }
    assert!(
        RULES
            .iter()
            .all(|r| r.position != LogPosition::NewestReadOnly || r.verdict == Verdict::End)
    );
}

#[test]
fn frames_round_trip_and_every_flipped_bit_is_caught() {
    let bytes = frame(b"some records", 0, 0);
    let decoded = intact(&bytes, 0).unwrap();
    assert_eq!(
        (decoded.body(), decoded.synced_offset(), decoded.end()),
        (&b"some records"[..], 0, bytes.len())
    );
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(intact(&flipped, 0).is_none(), "bit {bit}");
    }
    for len in 0..bytes.len() {
        assert!(intact(&bytes[..len], 0).is_none(), "truncated to {len}");
    }
    assert!(matches!(decode_frame(&bytes, 0, NONCE + 1), Decoded::Garbage), "another nonce");
    let moved = [vec![0; 8], bytes].concat();
    assert!(intact(&moved, 8).is_none(), "a frame is valid only at its own offset");
}

#[test]
fn log_headers_round_trip_and_reject_damage() {
    let header = encode_log_header(42);
    assert_eq!(decode_log_header(&header), Some(42));
    for byte in 0..header.len() {
        let mut damaged = header;
        damaged[byte] ^= 0x10;
        assert_eq!(decode_log_header(&damaged), None, "byte {byte}");
    }
    assert_eq!(decode_log_header(&header[..LOG_HEADER_LEN - 1]), None);
    assert!(Frames::new(&header[..LOG_HEADER_LEN - 1]).is_err());
}

#[test]
fn damage_is_torn_unless_a_later_frame_vouches_for_it() {
    let first = frame(b"first", 0, 0);
    let second_start = first.len();
    let second_body = b"second";
    let third_start = second_start + FRAME_HEADER_LEN + second_body.len();
    // A later frame written when only the first frame was durable: damage to the second
    // frame is a torn write.
    let third_unsynced = frame(b"third", third_start, second_start);
    // A later frame written after the second was synced: damage to it is corruption.
    let third_synced = frame(b"third", third_start, third_start);
    let mut second = frame(second_body, second_start, second_start);
    second[FRAME_HEADER_LEN] ^= 1;
    let torn = [first.clone(), second.clone(), third_unsynced].concat();
    assert_eq!(damage(&torn, second_start), Tail::Torn);
    let corrupt = [first.clone(), second, third_synced].concat();
    assert_eq!(damage(&corrupt, second_start), Tail::TornSynced);
    let zeroed_tail = [first.clone(), vec![0; 700]].concat();
    assert_eq!(damage(&zeroed_tail, second_start), Tail::UnsealedEnd);
    assert_eq!(classify(&zeroed_tail, second_start, NONCE, true), Tail::SealedEnd);
}

#[test]
fn a_zero_filled_tail_ends_a_log_cleanly_and_never_hides_damage() {
    let first = frame(b"first", 0, 0);
    let start = first.len();
    let clean = [first.clone(), vec![0; 5000]].concat();
    assert!(is_zero_tail(&clean, start), "zeros after the last frame: a clean end");
    assert!(is_zero_tail(&first, start), "the end of the file: a clean end");
    assert!(!is_zero_tail(&clean, start - 1), "not from inside a frame");
    let mut damaged = frame(b"second", start, start);
    damaged[FRAME_HEADER_LEN] ^= 1;
    let torn = [first.clone(), damaged.clone(), vec![0; 5000]].concat();
    assert!(!is_zero_tail(&torn, start), "a damaged frame is never a zero tail");
    assert_eq!(damage(&torn, start), Tail::Torn, "nothing vouches for it");
    // A frame far beyond a run of zeros that says the damaged frame was synced: found across
    // the zeros the scan skips.
    let gap = 100_000;
    let later_start = start + damaged.len() + gap;
    let later = frame(b"third", later_start, later_start);
    let corrupt = [first, damaged, vec![0; gap], later, vec![0; 3000]].concat();
    assert_eq!(damage(&corrupt, start), Tail::TornSynced);
    // The zero skip never passes a frame whose header begins with zero bytes.
    for zeros_before in [1, 39, 40, 41, 4096] {
        let at = LOG_HEADER_LEN + zeros_before;
        let mut log = vec![0xEE; LOG_HEADER_LEN];
        log.extend(vec![0; zeros_before]);
        log.extend(frame(b"x", at, at));
        assert_eq!(damage(&log, LOG_HEADER_LEN), Tail::TornSynced, "{zeros_before}");
    }
}

#[test]
fn bytes_inside_a_torn_frame_body_are_never_taken_for_a_frame() {
    let first = frame(b"first", 0, 0);
    let start = first.len();
    // A user value holding a perfect frame image for the position it lands at, claiming
    // everything was synced: the enclosing frame's header is intact, so its body is skipped
    // whole.
    let forged_at = start + FRAME_HEADER_LEN + 3;
    let forged = frame(b"", forged_at, forged_at);
    let body = [b"abc".to_vec(), forged, vec![b'z'; 50]].concat();
    let mut torn = frame(&body, start, start);
    let last = torn.len() - 1;
    torn[last] ^= 1;
    let log = [first, torn].concat();
    assert_eq!(damage(&log, start), Tail::Torn);
}

/// A log of `NONCE` with frames holding `bodies`, each written when everything before it was
/// synced, and a seal if `sealed`.
fn log_of(bodies: &[&[u8]], sealed: bool) -> Vec<u8> {
    let mut log = encode_log_header(NONCE).to_vec();
    for body in bodies {
        let at = log.len();
        log.extend(frame(body, at, at));
    }
    if sealed {
        let at = log.len() as u64;
        log.extend_from_slice(&seal(NONCE, at, at));
    }
    log
}

#[test]
fn frames_walk_a_log_and_the_end_follows_the_rule() {
    let mut record = [0u8; 64];
    let len = encode_put_into(&mut record, Version::new(5), b"key", b"value").unwrap();
    let log = log_of(&[&record[..len], &record[..len]], true);
    let mut frames = Frames::new(&log).unwrap();
    let bodies: Vec<_> = frames.by_ref().map(|frame| frame.body().len()).collect();
    assert_eq!(bodies, [len, len, 0]);
    let end = frames.clone().end(LogPosition::Older);
    assert_eq!((end.offset, end.tail, end.verdict), (log.len(), Tail::SealedEnd, Verdict::End));
    let unsealed = log_of(&[&record[..len]], false);
    let end = Frames::new(&unsealed).unwrap().end(LogPosition::Older);
    assert!(matches!(end.verdict, Verdict::Corrupt(what) if what.contains("cut short")));
    assert_eq!(Frames::new(&unsealed).unwrap().end(LogPosition::Newest).verdict, Verdict::End);
    // A torn last frame: the newest log truncates it, an older one is corrupt, a read-only
    // open stops before it.
    let mut torn = log_of(&[&record[..len], &record[..len]], false);
    let last_start = torn.len() - FRAME_HEADER_LEN - len;
    *torn.last_mut().unwrap() ^= 1;
    let verdicts = [LogPosition::Newest, LogPosition::Older, LogPosition::NewestReadOnly]
        .map(|position| Frames::new(&torn).unwrap().end(position));
    assert!(verdicts.iter().all(|end| end.offset == last_start && end.tail == Tail::Torn));
    assert_eq!(verdicts[0].verdict, Verdict::Truncate);
    assert!(matches!(verdicts[1].verdict, Verdict::Corrupt(_)));
    assert_eq!(verdicts[2].verdict, Verdict::End);
}

#[test]
fn records_of_a_body_stop_at_the_first_that_does_not_decode() {
    let mut body = [0u8; 128];
    let first = encode_put_into(&mut body, Version::new(1), b"a", b"1").unwrap();
    let second = encode_put_into(&mut body[first..], Version::new(2), b"b", b"2").unwrap();
    let whole = &body[..first + second];
    let log = log_of(&[whole], false);
    let frame = Frames::new(&log).unwrap().next().unwrap();
    let versions: Vec<_> = frame.records().map(|r| r.unwrap().version().get()).collect();
    assert_eq!(versions, [1, 2]);
    let cut = log_of(&[&body[..first + second - 1]], false);
    let frame = Frames::new(&cut).unwrap().next().unwrap();
    let records: Vec<_> = frame.records().collect();
    assert_eq!(records.len(), 2);
    assert!(records[0].is_ok());
    let bad = records[1].unwrap_err();
    assert_eq!((bad.offset, bad.cause), (first, DecodeError::Incomplete { needed: 1 }));
}
