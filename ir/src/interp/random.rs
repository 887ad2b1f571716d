//! The counter-based random generator behind `random_uniform`.

use crate::{DType, HostTensor, TensorData};

/// MurmurHash3's 32-bit finalizer: a bijection on `u32` with full avalanche.
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Element `index` of the uniform stream `(seed, salt)`: a value in `[0, 1)` that
/// depends only on its arguments, so every backend reproduces it bit for bit.
///
/// The definition (all arithmetic on `u32`, wrapping):
///
/// ```text
/// fmix32(h): h ^= h >> 16; h *= 0x85eb_ca6b; h ^= h >> 13; h *= 0xc2b2_ae35; h ^= h >> 16
/// key   = fmix32((seed as u32) ^ fmix32(salt + 0x9e37_79b9))
/// bits  = fmix32(index * 0x9e37_79b9 ^ key)
/// value = (bits >> 8) as f32 * 2^-24
/// ```
///
/// `seed as u32` reinterprets the i32's bits. The value has 24 random bits, so it is
/// exact in f32 and lies in `[0, 1 - 2^-24]`; f64 outputs use the same value widened.
/// `random_uniform` uses the flat row-major element index as `index` (wrapping at
/// 2^32 elements).
pub fn uniform_sample(seed: i32, salt: u32, index: u32) -> f32 {
    let key = fmix32((seed as u32) ^ fmix32(salt.wrapping_add(0x9e37_79b9)));
    let bits = fmix32(index.wrapping_mul(0x9e37_79b9) ^ key);
    // 2^-24 as f32; (bits >> 8) < 2^24 converts exactly.
    (bits >> 8) as f32 * (1.0 / 16_777_216.0)
}

pub(super) fn random_uniform(seed: &HostTensor, dtype: DType, salt: u32, n: usize) -> TensorData {
    let seed = seed.as_i32().expect("infer requires an i32 seed")[0];
    let sample = |i: usize| uniform_sample(seed, salt, i as u32);
    match dtype {
        DType::F32 => TensorData::F32((0..n).map(sample).collect()),
        DType::F64 => TensorData::F64((0..n).map(|i| f64::from(sample(i))).collect()),
        d @ (DType::I32 | DType::Bool) => unreachable!("infer rejects random_uniform of {d}"),
    }
}
