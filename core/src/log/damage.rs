//! The damage rule: what follows a log's last intact frame, and what recovery does about it,
//! as one table (the shape of the journal recovery table in `TigerBeetle`).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::FRAME_HEADER_LEN;
use super::frame::{Decoded, decode_frame};

/// What follows the last intact frame of a log.
///
/// Damage is the first offset after the intact frames that is neither the end of the file nor
/// the start of zeros that run to it. Its two states: an intact frame header whose body is
/// missing or fails its checksum (the search for a later frame starts after that body, whose
/// bytes are records, not frames: a value can hold a frame image), or no intact header at all
/// (the search tries every later offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tail {
    /// The end of the file, or zeros to it, after a seal.
    SealedEnd,
    /// The end of the file, or zeros to it, after a frame that is not a seal (or right after
    /// the log header).
    UnsealedEnd,
    /// Damage, and no intact frame after it says it was synced: a torn, unsynced write.
    Torn,
    /// Damage that an intact later frame says was durable (its `synced_offset` is past it).
    TornSynced,
}

/// Which log of the database is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogPosition {
    /// A log older than the newest: it was sealed and synced before a newer log existed.
    Older,
    /// The newest log, reopened to append to.
    Newest,
    /// The newest log of a read-only open: a writer in another process may be appending.
    NewestReadOnly,
}

/// What recovery does at the end of a log's intact frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The log ends here; any zeros after it are kept (appends overwrite them).
    End,
    /// The bytes from here on are a torn write that nobody was told is durable: cut them off.
    Truncate,
    /// Bytes that were durable are damaged, or missing: the named corruption, here.
    Corrupt(&'static str),
}

/// One line of the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What follows the last intact frame.
    pub tail: Tail,
    /// Which log.
    pub position: LogPosition,
    /// What recovery does.
    pub verdict: Verdict,
}

const CUT_SHORT: &str =
    "a log older than the newest one does not end with its seal: it was cut short";
const OLDER_TORN: &str = "a log older than the newest one is torn";
const SYNCED_DAMAGE: &str = "damaged frame in the synced part of the log";

/// The damage rule, every (tail, position) pair once (test `the_rule_covers_every_case_once`).
///
/// A read-only open ends wherever its intact frames end: what follows may be a frame a writer
/// is appending right now, so it can neither truncate nor call anything corrupt.
pub const RULES: [Rule; 12] = {
    use LogPosition::{Newest, NewestReadOnly, Older};
    use Tail::{SealedEnd, Torn, TornSynced, UnsealedEnd};
    use Verdict::{Corrupt, End, Truncate};
    const fn rule(tail: Tail, position: LogPosition, verdict: Verdict) -> Rule {
        Rule { tail, position, verdict }
    }
    [
        rule(SealedEnd, Older, End),
        rule(SealedEnd, Newest, End),
        rule(SealedEnd, NewestReadOnly, End),
        rule(UnsealedEnd, Older, Corrupt(CUT_SHORT)),
        rule(UnsealedEnd, Newest, End),
        rule(UnsealedEnd, NewestReadOnly, End),
        rule(Torn, Older, Corrupt(OLDER_TORN)),
        rule(Torn, Newest, Truncate),
        rule(Torn, NewestReadOnly, End),
        rule(TornSynced, Older, Corrupt(SYNCED_DAMAGE)),
        rule(TornSynced, Newest, Corrupt(SYNCED_DAMAGE)),
        rule(TornSynced, NewestReadOnly, End),
    ]
};

/// The verdict of [`RULES`] for `tail` in a log at `position`.
#[must_use]
pub fn verdict(tail: Tail, position: LogPosition) -> Verdict {
    let rule = RULES.iter().find(|rule| rule.tail == tail && rule.position == position);
    // Every pair is in the table (tested); a missing one would be the safe answer's opposite
    // of silent: corruption.
    rule.map_or(Verdict::Corrupt("no damage rule for this case"), |rule| rule.verdict)
}

/// What follows the intact frames that end at `offset` of `log` (nonce `nonce`); `sealed`:
/// whether the last of them was a seal.
pub(super) fn classify(log: &[u8], offset: usize, nonce: u64, sealed: bool) -> Tail {
    if super::is_zero_tail(log, offset) || offset >= log.len() {
        return if sealed { Tail::SealedEnd } else { Tail::UnsealedEnd };
    }
    let search_from = match decode_frame(log, offset, nonce) {
        Decoded::TornBody { end } => end,
        Decoded::Frame(_) | Decoded::Garbage => offset + 1,
    };
    match next_frame_synced_offset(log, search_from, nonce) {
        Some(synced_offset) if synced_offset > offset as u64 => Tail::TornSynced,
        _ => Tail::Torn,
    }
}

/// The synced offset of the first intact frame at or after `start`, if any.
fn next_frame_synced_offset(log: &[u8], mut start: usize, nonce: u64) -> Option<u64> {
    while start < log.len() {
        // A frame header holds its nonzero offset: no frame starts more than a header's
        // length before the next nonzero byte (which skips a zero-filled tail fast).
        let nonzero = log.get(start..)?.iter().position(|&byte| byte != 0)?;
        start = start.max((start + nonzero).saturating_sub(FRAME_HEADER_LEN - 1));
        if let Decoded::Frame(frame) = decode_frame(log, start, nonce) {
            return Some(frame.synced_offset());
        }
        start += 1;
    }
    None
}
