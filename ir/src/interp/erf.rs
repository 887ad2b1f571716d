//! The error function in f64, written out here (Rust's `std` has no `erf`).

/// `2 / sqrt(pi)`.
const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

/// `e^(-a²)` with `a²` split exactly into `hi + lo` (`lo` from a fused
/// multiply-add), so that the rounding of `a²` does not reach the result:
/// `e^(-hi) (1 - lo)`, `|lo|` being below an ulp of `hi`.
fn exp_neg_square(a: f64) -> f64 {
    let hi = a * a;
    let lo = a.mul_add(a, -hi);
    (-hi).exp() * (1.0 - lo)
}

/// The error function `erf(x) = 2/sqrt(pi) ∫₀ˣ e^(-t²) dt`, within about 1.8e-15
/// relative error over all f64 (measured against 50-digit values). Odd:
/// `erf(-0) = -0`; `erf(±inf) = ±1`, `erf(NaN) = NaN`.
///
/// Below |x| = 2 it sums the series `erf(a) = 2/sqrt(pi) e^(-a²) Σ 2ⁿ a^(2n+1) /
/// (1·3·…·(2n+1))`, whose terms are all positive (no cancellation); from 2 to 6 it
/// takes `1 - erfc(a)` with `erfc(a) = e^(-a²)/sqrt(pi) / (a + (1/2)/(a + 1/(a +
/// (3/2)/(a + …))))`, the continued fraction evaluated backwards from depth 120;
/// beyond 6, `erfc(a) < 2.2e-17` and the result is ±1.
///
/// The interpreter's `erf` (f32 rounds this result) and the compiled f64 `erf`
/// call this function.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.0 {
        let a2 = a * a;
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        // Terms shrink geometrically once 2n + 1 > 2a²: at most ~60 of them.
        loop {
            n += 1.0;
            term = term * (2.0 * a2) / (2.0 * n + 1.0);
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        TWO_OVER_SQRT_PI * exp_neg_square(a) * sum
    } else if a < 6.0 {
        let mut t = a;
        for k in (1..=120).rev() {
            t = a + f64::from(k) * 0.5 / t;
        }
        let erfc = exp_neg_square(a) * (0.5 * TWO_OVER_SQRT_PI) / t;
        1.0 - erfc
    } else {
        1.0
    };
    r.copysign(x)
}
