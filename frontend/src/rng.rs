//! A small, seeded pseudo-random generator for initializers, data and tests.
//!
//! xoshiro256++ (Blackman and Vigna), its state filled from the seed by splitmix64 as
//! the authors recommend. Not cryptographic; fast, 2^256 - 1 period, and the same
//! sequence on every platform for a given seed.

use std::f64::consts::TAU;

/// A seeded pseudo-random generator (xoshiro256++).
///
/// ```
/// use kiln_frontend::Rng;
///
/// let mut a = Rng::seed(42);
/// let mut b = Rng::seed(42);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let x = a.uniform(-1.0, 1.0);
/// assert!((-1.0..1.0).contains(&x));
/// let mut v: Vec<u32> = (0..10).collect();
/// a.shuffle(&mut v);
/// v.sort();
/// assert_eq!(v, (0..10).collect::<Vec<_>>());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
    /// The second value of the last Box-Muller pair, not yet returned (as bits).
    spare_normal: Option<u64>,
}

/// One step of splitmix64: advances `state` and returns the next output.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose sequence is determined by `seed`.
    pub fn seed(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // splitmix64 outputs are a bijection of distinct states, so they are never
        // all zero (the one state xoshiro must avoid).
        Rng {
            s,
            spare_normal: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A uniform `f64` in `[0, 1)` (53 random bits).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform `f32` in `[0, 1)` (24 random bits).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// A uniform `f64` in `[lo, hi)` (`lo` if the interval is empty).
    pub fn uniform_f64(&mut self, lo: f64, hi: f64) -> f64 {
        let x = lo + (hi - lo) * self.f64();
        // Rounding can reach `hi`; keep the interval half-open.
        if x >= hi && hi > lo {
            hi.next_down()
        } else {
            x
        }
    }

    /// A uniform `f32` in `[lo, hi)` (`lo` if the interval is empty).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let x = self.uniform_f64(lo as f64, hi as f64) as f32;
        if x >= hi && hi > lo {
            hi.next_down()
        } else {
            x
        }
    }

    /// A standard normal `f64` (mean 0, standard deviation 1), by Box-Muller.
    pub fn standard_normal(&mut self) -> f64 {
        if let Some(bits) = self.spare_normal.take() {
            return f64::from_bits(bits);
        }
        // u1 in (0, 1] so the log is finite.
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (TAU * u2).sin_cos();
        self.spare_normal = Some((r * s).to_bits());
        r * c
    }

    /// A normal `f64` with mean `mean` and standard deviation `std`.
    pub fn normal_f64(&mut self, mean: f64, std: f64) -> f64 {
        mean + std * self.standard_normal()
    }

    /// A normal `f32` with mean `mean` and standard deviation `std`.
    pub fn normal(&mut self, mean: f32, std: f32) -> f32 {
        self.normal_f64(mean as f64, std as f64) as f32
    }

    /// A uniform integer in `0..n` without modulo bias (Lemire's method); 0 if
    /// `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Shuffles `items` uniformly in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A new generator seeded from this one: an independent stream for a sub-task.
    pub fn fork(&mut self) -> Rng {
        Rng::seed(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Published outputs of splitmix64 seeded with 0.
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut s), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(splitmix64(&mut s), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn xoshiro_step_follows_the_definition() {
        // One step computed by hand from the algorithm on a simple state.
        let mut r = Rng {
            s: [1, 2, 3, 4],
            spare_normal: None,
        };
        // result = rotl(1 + 4, 23) + 1
        assert_eq!(r.next_u64(), (5u64 << 23) + 1);
        // t = 2 << 17; s2 = 3^1 = 2; s3 = 4^2 = 6; s1 = 2^2 = 0; s0 = 1^6 = 7;
        // s2 = 2 ^ t; s3 = rotl(6, 45)
        assert_eq!(r.s, [7, 0, 2 ^ (2 << 17), 6u64.rotate_left(45)]);
    }

    #[test]
    fn below_covers_the_range_evenly() {
        let mut r = Rng::seed(7);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[r.below(6) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn uniform_stays_in_half_open_interval() {
        let mut r = Rng::seed(3);
        for _ in 0..10_000 {
            let x = r.uniform(1.0, 1.0 + f32::EPSILON);
            assert!((1.0..1.0 + f32::EPSILON).contains(&x));
        }
        assert_eq!(r.uniform(2.0, 2.0), 2.0);
    }
}
