//! `exp` and `tanh` written out, so that every platform computes the same bits.
//!
//! Rust's `f32::exp` and `f32::tanh` call the platform's C math library, and glibc, musl,
//! macOS and Windows may round their last bit differently. That is harmless for most
//! programs, but it would make this crate's logits (softmax uses `exp`, GELU uses `tanh`),
//! and so its sampled text, depend on the machine. Here the two functions use only `+`,
//! `-`, `*`, `/` and integer operations, which IEEE 754 defines exactly, and Rust never fuses
//! `a * b + c` on its own: the results are bit-identical everywhere.
//!
//! ```text
//! exp(x):  x = k ln2 + r  with |r| <= ln2/2    (k an integer)
//!          e^x = 2^k * e^r,  e^r by its Taylor series to r^13 (error < 1e-17), in f64
//! tanh(x) = (e^2x - 1) / (e^2x + 1) = expm1(2x) / (expm1(2x) + 2),  odd in x
//! ```
//!
//! Working in f64 and rounding once to f32 gives the correctly rounded f32 in all but
//! vanishingly rare near-halfway cases: the tests find every result within one unit in the
//! last place (ulp) of the correctly rounded value, and equal to it in over 99.99% of cases,
//! which is better than some platforms' own `tanhf`.

/// ln 2, split into a high part whose last 32 bits are zero (so `k * LN2_HI` is exact for
/// every `k` we meet) and the remainder: fdlibm's `ln2_hi` and `ln2_lo`, given by their bits.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000); // 6.93147180369123816490e-01
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76); // 1.90821492927058770002e-10
const INV_LN2: f64 = std::f64::consts::LOG2_E;

/// e^x for any f64 (`+inf` above 709.78, `0` below -745.2).
///
/// Written without early returns: the main path runs on `x` clamped into range, then the
/// special cases are picked. The values are the same, and a loop over many `x` (softmax's,
/// GELU's) then compiles to vector instructions, several `x` at a time.
#[inline]
pub fn exp_f64(x: f64) -> f64 {
    const MAX: f64 = 709.782_712_893_384; // above it e^x overflows f64
    const MIN: f64 = -745.2; // below it e^x rounds to 0
    let x_in = x.clamp(MIN, MAX); // NaN stays NaN
    // Range reduction: k = nearest integer to x / ln2, r = x - k ln2 in [-0.35, 0.35].
    let k = (x_in * INV_LN2 + if x_in < 0.0 { -0.5 } else { 0.5 }) as i32; // NaN -> 0
    let r = (x_in - k as f64 * LN2_HI) - k as f64 * LN2_LO;
    let e_r = 1.0 + r * taylor_tail(r);
    // Multiply by 2^k in two exact steps (2^k alone may not be a normal f64).
    let half = k / 2;
    let e_x = e_r * pow2(half) * pow2(k - half);
    if x > MAX {
        f64::INFINITY
    } else if x < MIN {
        0.0
    } else if x.is_nan() {
        x
    } else {
        e_x
    }
}

/// `1/n!` for `n = 0..=13`, computed at compile time: the factorials are exact integers in
/// f64 (below 2^53) and each division is correctly rounded, so the table is exact to the last
/// bit on every platform.
const INV_FACTORIAL: [f64; 14] = {
    let mut table = [1.0; 14];
    let mut factorial = 1.0;
    let mut n = 1;
    while n < 14 {
        factorial *= n as f64;
        table[n] = 1.0 / factorial;
        n += 1;
    }
    table
};

/// `(e^r - 1) / r` by its Taylor series, for |r| <= 0.5: `1 + r/2! + r^2/3! + ... + r^12/13!`,
/// in Horner form.
#[inline]
fn taylor_tail(r: f64) -> f64 {
    let mut sum = INV_FACTORIAL[13];
    for n in (1..=12).rev() {
        sum = sum * r + INV_FACTORIAL[n];
    }
    sum
}

/// 2^k for -1022 <= k <= 1023, built from its bits.
#[inline]
fn pow2(k: i32) -> f64 {
    f64::from_bits(((1023 + k) as u64) << 52)
}

/// e^x - 1, accurate also for small x (where `exp(x) - 1` would cancel). Both forms are
/// computed and one picked, so that a loop over many `x` vectorizes (see [`exp_f64`]).
#[inline]
fn expm1_f64(x: f64) -> f64 {
    let (small, large) = (x * taylor_tail(x), exp_f64(x) - 1.0);
    if x.abs() < 0.5 { small } else { large }
}

/// e^x, the same bits on every platform.
///
/// ```
/// use gpt2_edu::math::exp;
/// assert_eq!(exp(0.0), 1.0);
/// assert_eq!(exp(1.0), std::f32::consts::E);
/// assert_eq!(exp(f32::NEG_INFINITY), 0.0);
/// ```
#[inline]
pub fn exp(x: f32) -> f32 {
    exp_f64(x as f64) as f32
}

/// tanh(x), the same bits on every platform.
#[inline]
pub fn tanh(x: f32) -> f32 {
    let a = (x as f64).abs();
    let e = expm1_f64(2.0 * if a > 20.0 { 20.0 } else { a }); // NaN stays NaN
    let t = if a > 20.0 {
        1.0 // tanh(20) rounds to 1 in f32 already
    } else {
        e / (e + 2.0)
    };
    (t as f32).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite f32s of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    /// Compares `ours` with the platform's f64 function rounded to f32 (an almost always
    /// correctly rounded reference) over `inputs`: never more than 1 ulp apart, and equal
    /// for all but a tiny fraction. (The platform's f32 functions are no reference: glibc's
    /// `tanhf` is 2 ulps off at -0.99887, where this module is exact.)
    fn check_against_f64(
        ours: fn(f32) -> f32,
        reference: fn(f64) -> f64,
        inputs: impl Iterator<Item = f32>,
    ) {
        let (mut count, mut inexact, mut worst) = (0, 0, 0);
        for x in inputs {
            let distance = ulps(ours(x), reference(x as f64) as f32);
            worst = worst.max(distance);
            inexact += usize::from(distance > 0);
            count += 1;
        }
        assert!(worst <= 1, "worst difference {worst} ulps");
        assert!(inexact * 10_000 < count, "{inexact} of {count} not correctly rounded");
    }

    #[test]
    fn exp_is_correctly_rounded_almost_everywhere() {
        let inputs = (0..265_000).map(|i| -104.0 + i as f32 * 0.000_731);
        check_against_f64(exp, f64::exp, inputs);
    }

    #[test]
    fn tanh_is_correctly_rounded_almost_everywhere() {
        let inputs = (-2_000_000..2_000_000).map(|i| i as f32 * 1e-5);
        check_against_f64(tanh, f64::tanh, inputs.chain([1e-30, 1e-10, 3e-4, 25.0, 1e30]));
    }

    #[test]
    fn special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(f32::NEG_INFINITY).to_bits(), 0);
        assert_eq!(exp(-200.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(-100.0), (-100.0f32).exp(), "subnormal results round once");
        assert_eq!(tanh(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
    }
}
