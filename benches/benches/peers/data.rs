//! The data every engine gets: keys, values, read orders and the YCSB key chooser, all from
//! fastrand generators with fixed seeds, so every engine sees the same bytes in the same order.

pub const KEY_LEN: usize = 16;
pub const VALUE_LEN: usize = 100;
pub type Key = [u8; KEY_LEN];

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

/// `count` random 16-byte keys (distinct: a collision among 2^128 is not a concern at these
/// sizes, and the checks across engines would show one).
pub fn random_keys(seed: u64, count: usize) -> Vec<Key> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count).map(|_| rng.u128(..).to_be_bytes()).collect()
}

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

/// YCSB's Zipfian generator (Gray et al., "Quickly generating billion-record synthetic
/// databases", SIGMOD 1994, as in YCSB's `ZipfianGenerator`), constant 0.99, over `0..item_count`.
pub struct Zipfian {
    item_count: f64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

pub const ZIPFIAN_CONSTANT: f64 = 0.99;

impl Zipfian {
    #[allow(clippy::cast_precision_loss, reason = "item counts are far below 2^52")]
    pub fn new(item_count: usize) -> Zipfian {
        assert!(item_count >= 2, "a Zipfian needs two items");
        let theta = ZIPFIAN_CONSTANT;
        let zeta = |n: usize| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zeta_n = zeta(item_count);
        let zeta_2 = zeta(2);
        let item_count = item_count as f64;
        let eta = (1.0 - (2.0 / item_count).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n);
        Zipfian { item_count, theta, alpha: 1.0 / (1.0 - theta), zeta_n, eta }
    }

    /// A rank: 0 is the most popular item.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "the formula yields a value in [0, item_count)"
    )]
    pub fn next(&self, rng: &mut fastrand::Rng) -> usize {
        let u = rng.f64();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5_f64.powf(self.theta) {
            return 1;
        }
        let rank = self.item_count * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (rank as usize).min(self.item_count as usize - 1)
    }
}

/// YCSB's scrambling of a Zipfian rank (`ScrambledZipfianGenerator`): FNV-1a of the rank, so
/// the popular items are spread over the key space rather than clustered.
pub fn scramble(rank: usize, item_count: usize) -> usize {
    const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut hash = FNV_OFFSET;
    for byte in (rank as u64).to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    (hash % item_count as u64) as usize
}
