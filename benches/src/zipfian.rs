//! YCSB's Zipfian key chooser, shared by the peer harness (YCSB rows) and the transactions
//! comparison (Zipfian rows).

/// YCSB's Zipfian generator (Gray et al., "Quickly generating billion-record synthetic
/// databases", SIGMOD 1994, as in YCSB's `ZipfianGenerator`), constant [`ZIPFIAN_CONSTANT`],
/// over `0..item_count`. Setting up costs O(`item_count`) (the zeta sum); each draw is O(1).
#[derive(Clone, Debug)]
pub struct Zipfian {
    item_count: f64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

/// YCSB's default skew (`zipfian.constant`).
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

impl Zipfian {
    /// A generator over `0..item_count`.
    ///
    /// # Panics
    ///
    /// If `item_count` is below 2 (a one-item Zipfian is not a distribution to draw from).
    #[must_use]
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
#[must_use]
#[allow(clippy::cast_possible_truncation, reason = "the result is below item_count")]
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

#[cfg(test)]
mod tests {
    use super::{Zipfian, scramble};

    /// Draws `draws` ranks over `item_count` items (seed printed); returns the count per rank.
    fn histogram(item_count: usize, draws: usize, seed: u64) -> Vec<usize> {
        println!("zipfian test seed {seed}");
        let zipfian = Zipfian::new(item_count);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut counts = vec![0; item_count];
        for _ in 0..draws {
            counts[zipfian.next(&mut rng)] += 1;
        }
        counts
    }

    /// Rank r has probability (1 / (r + 1)^0.99) / zeta(n): over 1,000 items rank 0 is about
    /// 13.4% of the draws, rank 1 half of that, and the top 10 ranks about 38% (Gray's formula
    /// for ranks past 1 is an approximation: 39.8% measured, hence the wider tolerance).
    #[test]
    #[allow(clippy::cast_precision_loss, reason = "test arithmetic on small counts")]
    fn ranks_follow_the_zipfian_law() {
        let draws = 200_000;
        let counts = histogram(1000, draws, 0x21BF);
        let share = |count: usize| count as f64 / draws as f64;
        let zeta: f64 = (1..=1000).map(|i| 1.0 / f64::from(i).powf(0.99)).sum();
        assert!((share(counts[0]) - 1.0 / zeta).abs() < 0.005, "rank 0: {}", share(counts[0]));
        let ratio = counts[0] as f64 / counts[1] as f64;
        assert!((ratio - 2_f64.powf(0.99)).abs() < 0.1, "rank 0 / rank 1 = {ratio}");
        let top_ten: f64 = (1..=10).map(|i| 1.0 / f64::from(i).powf(0.99)).sum::<f64>() / zeta;
        let measured = share(counts[..10].iter().sum());
        assert!((measured - top_ten).abs() < 0.03, "top 10: {measured} vs {top_ten}");
        assert!(counts.iter().all(|&count| count < draws), "every rank in range");
    }

    #[test]
    fn scramble_stays_in_range_and_spreads_the_top_ranks() {
        let item_count = 10_000;
        let spread: std::collections::BTreeSet<usize> =
            (0..100).map(|rank| scramble(rank, item_count)).collect();
        assert!(spread.iter().all(|&index| index < item_count));
        assert!(spread.len() > 95, "the top 100 ranks land on {} items", spread.len());
        assert!(spread.iter().any(|&index| index > item_count / 2), "not clustered at 0");
    }
}
