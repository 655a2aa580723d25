//! The data every engine gets: keys, values, read orders and the YCSB key chooser, all from
//! fastrand generators with fixed seeds, so every engine sees the same bytes in the same order.

pub const VALUE_LEN: usize = 100;
/// The longest key of any key set.
const KEY_LEN_MAX: usize = 32;

/// One key of a key set: up to [`KEY_LEN_MAX`] bytes, `Copy`, and a `[u8]` through `Deref`
/// (ordered as its bytes).
#[derive(Clone, Copy)]
pub struct Key {
    bytes: [u8; KEY_LEN_MAX],
    len: u8,
}

impl Key {
    fn new(parts: &[&[u8]]) -> Key {
        let mut key = Key { bytes: [0; KEY_LEN_MAX], len: 0 };
        for part in parts {
            let start = usize::from(key.len);
            key.bytes[start..start + part.len()].copy_from_slice(part);
            key.len = u8::try_from(start + part.len()).expect("keys are at most 32 bytes");
        }
        key
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

/// Which keys a run writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySet {
    /// 16 random bytes: high entropy from the first byte.
    Random,
    /// [`SHARED_PREFIX`] then an 8-byte id (the first 8 bytes of the random key with the same
    /// index), as SurrealDB writes a table's records: `/*ns\0*db\0*table\0*` then the id.
    SharedPrefix,
}

/// The shared-prefix key set's 24-byte common prefix.
pub const SHARED_PREFIX: &[u8; 24] = b"/*bench\0*main\0*persons\0*";

impl KeySet {
    pub const ALL: [KeySet; 2] = [KeySet::Random, KeySet::SharedPrefix];

    /// The name on the command line (`--key-sets`).
    pub fn name(self) -> &'static str {
        match self {
            KeySet::Random => "random",
            KeySet::SharedPrefix => "shared-prefix",
        }
    }

    pub fn from_name(name: &str) -> Option<KeySet> {
        KeySet::ALL.into_iter().find(|set| set.name() == name)
    }

    /// What the report appends to the rows of this key set.
    pub fn row_suffix(self) -> &'static str {
        match self {
            KeySet::Random => "",
            KeySet::SharedPrefix => SHARED_PREFIX_ROW_SUFFIX,
        }
    }

    /// `count` keys of this set from `seed`, in write order (the same order, and the same
    /// relative order of the first 8 random bytes, in both sets).
    pub fn keys(self, seed: u64, count: usize) -> Vec<Key> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..count)
            .map(|_| {
                let random = rng.u128(..).to_be_bytes();
                match self {
                    KeySet::Random => Key::new(&[&random]),
                    KeySet::SharedPrefix => Key::new(&[SHARED_PREFIX, &random[..8]]),
                }
            })
            .collect()
    }
}

/// The suffix of the shared-prefix key set's rows.
pub const SHARED_PREFIX_ROW_SUFFIX: &str = " [shared-prefix keys]";

/// Distinct values, cycled through by write index: incompressible bytes, and no two neighbours
/// alike (a prime count, so a value never lines up with a batch or a round).
const VALUE_POOL_LEN: usize = 1009;

pub const SEED_KEYS: u64 = 0x5EED_0001;
pub const SEED_VALUES: u64 = 0x5EED_0002;
pub const SEED_READS: u64 = 0x5EED_0003;
pub const SEED_QUERIES: u64 = 0x5EED_0004;
pub const SEED_YCSB: u64 = 0x5EED_0005;
pub const SEED_VERSIONED_KEYS: u64 = 0x5EED_0006;
pub const SEED_INSERTS: u64 = 0x5EED_0007;

pub struct Values {
    pool: Vec<[u8; VALUE_LEN]>,
}

impl Values {
    pub fn new() -> Values {
        let mut rng = fastrand::Rng::with_seed(SEED_VALUES);
        let pool = (0..VALUE_POOL_LEN)
            .map(|_| {
                let mut value = [0; VALUE_LEN];
                rng.fill(&mut value);
                value
            })
            .collect();
        Values { pool }
    }

    /// The value of the write with index `index`.
    pub fn get(&self, index: usize) -> &[u8] {
        &self.pool[index % VALUE_POOL_LEN]
    }
}

pub use zverse_benches::zipfian::{Zipfian, scramble};
