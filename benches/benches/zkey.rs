//! The interleaving codec: Morton encode (SIMD and scalar), `ZKey` comparison and BIGMIN.
//! The target: at most 5 ns per encode for keys up to 16 bytes.
//!
//! `cargo bench -p zverse-benches --bench zkey`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use zverse_core::Version;
use zverse_core::zkey::{
    ZBox, ZKey, deinterleave_scalar, deinterleave_simd, interleave_scalar, interleave_simd,
    key_prefix, morton,
};

/// Inputs per benchmark, cycled through so that no single value is constant-folded.
const INPUT_COUNT: usize = 1024;
const _: () = assert!(INPUT_COUNT.is_power_of_two());

/// A fixed-seed xorshift64*: the benches need varied inputs, not good randomness.
struct Inputs(u64);

impl Inputs {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn keys(&mut self, key_len: usize) -> Vec<Vec<u8>> {
        (0..INPUT_COUNT)
            .map(|_| (0..key_len).map(|_| b'a' + (self.next_u64() % 26) as u8).collect())
            .collect()
    }

    fn versions(&mut self) -> Vec<Version> {
        (0..INPUT_COUNT).map(|_| Version::new(self.next_u64() >> 8)).collect()
    }
}

fn bench_morton(c: &mut Criterion) {
    let mut inputs = Inputs(0x9E37_79B9_7F4A_7C15);
    let versions = inputs.versions();
    let mut group = c.benchmark_group("zkey/morton");
    for key_len in [8, 16] {
        let keys = inputs.keys(key_len);
        let mut index = 0;
        let mut next = move || {
            index = (index + 1) % INPUT_COUNT;
            index
        };
        group.bench_function(BenchmarkId::new("simd", key_len), |b| {
            b.iter(|| {
                let i = next();
                interleave_simd(key_prefix(black_box(&keys[i])), black_box(versions[i]).get())
            });
        });
        group.bench_function(BenchmarkId::new("scalar", key_len), |b| {
            b.iter(|| {
                let i = next();
                interleave_scalar(key_prefix(black_box(&keys[i])), black_box(versions[i]).get())
            });
        });
        group.bench_function(BenchmarkId::new("default", key_len), |b| {
            b.iter(|| {
                let i = next();
                morton(black_box(&keys[i]), black_box(versions[i]))
            });
        });
    }
    group.finish();
}

fn bench_deinterleave(c: &mut Criterion) {
    let mut inputs = Inputs(0xD1B5_4A32_D192_ED03);
    let codes: Vec<u128> =
        (0..INPUT_COUNT).map(|_| interleave_scalar(inputs.next_u64(), inputs.next_u64())).collect();
    let mut group = c.benchmark_group("zkey/deinterleave");
    let mut index = 0;
    let mut next = move || {
        index = (index + 1) % INPUT_COUNT;
        index
    };
    group.bench_function("simd", |b| b.iter(|| deinterleave_simd(black_box(codes[next()]))));
    group.bench_function("scalar", |b| b.iter(|| deinterleave_scalar(black_box(codes[next()]))));
    group.finish();
}

fn bench_zkey(c: &mut Criterion) {
    let mut inputs = Inputs(0x2545_F491_4F6C_DD1D);
    // 12-byte keys over a 2-letter alphabet: many equal prefixes, so comparisons often reach
    // the key bytes after `M`.
    let keys: Vec<Vec<u8>> = (0..INPUT_COUNT)
        .map(|_| (0..12).map(|_| b'a' + (inputs.next_u64() % 2) as u8).collect())
        .collect();
    let zkeys: Vec<ZKey<'_>> =
        keys.iter().map(|key| ZKey::new(key, Version::new(inputs.next_u64() % 4))).collect();
    let mut index = 0;
    let mut next = move || {
        index = (index + 1) % INPUT_COUNT;
        index
    };
    c.bench_function("zkey/compare", |b| {
        b.iter(|| {
            let i = next();
            black_box(&zkeys[i]).cmp(black_box(&zkeys[(i + 1) % INPUT_COUNT]))
        });
    });
}

fn bench_bigmin(c: &mut Criterion) {
    let mut inputs = Inputs(0x8CB9_2BA7_2F3D_8DD7);
    // A narrow time window over a wide key range: the shape of a `changes` query.
    let zbox = ZBox::new(1 << 60, 3 << 60, 1 << 40, (1 << 40) + 1000).expect("non-empty box");
    let codes: Vec<u128> =
        (0..INPUT_COUNT).map(|_| interleave_scalar(inputs.next_u64(), inputs.next_u64())).collect();
    let mut index = 0;
    c.bench_function("zkey/bigmin", |b| {
        b.iter(|| {
            index = (index + 1) % INPUT_COUNT;
            zbox.next_at_or_after(black_box(codes[index]))
        });
    });
}

criterion_group!(benches, bench_morton, bench_deinterleave, bench_zkey, bench_bigmin);
criterion_main!(benches);
