//! Helpers shared by the tests of the kiln crates (a dev-dependency only).
//!
//! - [`Rng`]: a tiny seeded xorshift64* generator for test data and random test
//!   cases, independent of the library's own generator (so changing that one does
//!   not reshuffle every test);
//! - [`TempDir`]: a fresh scratch folder, removed when dropped;
//! - [`near`] and [`near_or_same`]: the relative tolerance most numeric tests use;
//! - [`ulps_apart`] and [`agrees`]: the sharper comparison of the differential
//!   tests (units in the last place, signed zeros, NaN);
//! - [`assert_w1_result`]: the expected outcome of the W1 workload;
//! - [`graphs::random_graph`]: random valid graphs over every op;
//! - [`Draw`] and [`Recipe`]: random choices from a generator or from a vector
//!   proptest can shrink; [`proptest_config`]: fixed seeds, with an opt-in long
//!   run (`KILN_PROPTEST_CASES=N`, random seeds).
//!
//! It depends on `kiln-ir` only, so every crate's integration tests can use it,
//! `kiln-ir`'s included.

pub mod graphs;

use std::path::{Path, PathBuf};

use kiln_ir::{DType, HostTensor, TensorType};

/// A source of random choices for test-case generators: a seeded [`Rng`], or a
/// [`Recipe`] of recorded choices that proptest shrinks toward simpler cases.
pub trait Draw {
    /// The next 64 bits of choice.
    fn bits(&mut self) -> u64;

    /// In `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// In `[lo, hi)`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// In `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        (self.bits() % n.max(1) as u64) as usize
    }

    /// True with probability `p` (always for a zero choice).
    fn chance(&mut self, p: f64) -> bool {
        self.unit() <= p
    }
}

impl Draw for Rng {
    fn bits(&mut self) -> u64 {
        Rng::bits(self)
    }
}

/// Recorded choices, taken in order, then zeros: what a proptest strategy
/// `vec(any::<u64>(), ..)` generates and shrinks (shorter vectors and smaller
/// values are fewer, first-listed choices, so a failing case shrinks to a small
/// graph).
#[derive(Clone, Debug)]
pub struct Recipe {
    choices: Vec<u64>,
    next: usize,
}

impl Recipe {
    pub fn new(choices: Vec<u64>) -> Self {
        Recipe { choices, next: 0 }
    }
}

impl Draw for Recipe {
    fn bits(&mut self) -> u64 {
        let v = self.choices.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        v
    }
}

/// The proptest configuration of kiln's property tests: `cases` cases from the
/// fixed seed `seed`, no persistence files. `KILN_PROPTEST_CASES=N` runs `N`
/// cases from a random seed instead (the long run; a failure prints the shrunk
/// input to reproduce it).
pub fn proptest_config(cases: u32, seed: u64) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, RngSeed};
    let long: Option<u32> = std::env::var("KILN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok());
    Config {
        cases: long.unwrap_or(cases),
        failure_persistence: None,
        rng_seed: if long.is_some() {
            RngSeed::Random
        } else {
            RngSeed::Fixed(seed)
        },
        ..Config::default()
    }
}

/// xorshift64*: small, seeded, good enough for test data.
///
/// `Rng(s)` starts from the state `s` as given (it must not be zero);
/// [`Rng::new`] scrambles a small seed first.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed`, any value (zero included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)` (53 random bits).
    pub fn unit(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() <= p
    }

    /// A tensor of `dtype` and `dims` with values uniform in `[lo, hi)`.
    pub fn tensor(&mut self, dtype: DType, dims: &[usize], lo: f64, hi: f64) -> HostTensor {
        HostTensor::from_fn(&TensorType::new(dtype, dims), |_| self.uniform(lo, hi))
    }
}

/// A fresh folder under the system temp dir, removed (with its contents) when
/// dropped. Its name holds `prefix`, the process id and the time, so concurrent
/// tests and test runs do not meet.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `kiln-{prefix}-{pid}-{nanos}` under the system temp dir.
    pub fn new(prefix: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("kiln-{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the folder.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `bytes` to `name` inside the folder and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `|got - want| <= tol * (1 + |want|)`: relative to `want`, absolute near zero.
pub fn near(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * (1.0 + want.abs())
}

/// [`near`], or both NaN, or equal (equal infinities included).
pub fn near_or_same(got: f64, want: f64, tol: f64) -> bool {
    (got.is_nan() && want.is_nan()) || got == want || near(got, want, tol)
}

/// How many representable values of `dtype` (f32 or f64) lie between `got` and
/// `want`: 0 when they are the same value or both NaN. The two zeros are the same
/// value here (check their signs apart); NaN against a number is `u64::MAX`.
pub fn ulps_apart(got: f64, want: f64, dtype: DType) -> u64 {
    if got.is_nan() || want.is_nan() {
        return if got.is_nan() && want.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    // Map the floats onto integers in the same order (both zeros to 0).
    let ordered = |x: f64| -> i128 {
        match dtype {
            DType::F32 => {
                let b = (x as f32).to_bits();
                let m = i128::from(b & 0x7fff_ffff);
                if b >> 31 == 1 { -m } else { m }
            }
            _ => {
                let b = x.to_bits();
                let m = i128::from(b & 0x7fff_ffff_ffff_ffff);
                if b >> 63 == 1 { -m } else { m }
            }
        }
    };
    (ordered(got) - ordered(want)).unsigned_abs() as u64
}

/// Whether element `got` of a `dtype` tensor agrees with `want`: NaN only with
/// NaN, infinities only with themselves, a zero only with a zero of the same sign;
/// i32 and bool exactly; a float within `ulps` units in the last place of `dtype`,
/// or within `rel * max(|want|, 1)` (for contractions of O(1) data, whose results
/// near zero come from cancellation; 0 to turn it off).
pub fn agrees(got: f64, want: f64, dtype: DType, ulps: u64, rel: f64) -> bool {
    if !dtype.is_float() {
        return got == want;
    }
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    if got.is_infinite() || want.is_infinite() {
        return got == want;
    }
    if (got == 0.0 || want == 0.0)
        && rel == 0.0
        && got.is_sign_negative() != want.is_sign_negative()
    {
        return false;
    }
    if got == 0.0 && want == 0.0 {
        return got.is_sign_negative() == want.is_sign_negative();
    }
    ulps_apart(got, want, dtype) <= ulps || (got - want).abs() <= rel * want.abs().max(1.0)
}

/// Asserts the parameters after W1 (docs/WORKLOADS.md: 1000 SGD steps, lr 0.01,
/// from w = b = 0) are near the exact fit w = b = 1, and at JAX's result for the
/// same run, w = 1.002474, b = 0.990555 (docs/WORKLOADS.md): deterministic f32
/// descent agrees to the reference's six decimals, far closer than the 2.5e-3
/// left to the optimum.
#[track_caller]
pub fn assert_w1_result(w: f64, b: f64) {
    assert!(
        (w - 1.0).abs() < 0.05 && (b - 1.0).abs() < 0.05,
        "w = {w}, b = {b}"
    );
    assert!(
        (w - 1.002474).abs() < 1e-5 && (b - 0.990555).abs() < 1e-5,
        "w = {w}, b = {b}"
    );
}
