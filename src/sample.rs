//! Sampling: choosing the next token at random, in proportion to how likely the model finds
//! it, instead of always taking the most likely one (greedy decoding repeats itself).
//!
//! Five knobs, applied in this order (HuggingFace's order too; each filter renormalises
//! what is left):
//!
//! ```text
//! 1. temperature T:  p = softmax(logits / T)       T < 1 sharpens, T > 1 flattens; T = 0 is greedy
//! 2. top-k K:        keep the K most likely tokens (ties go to the lower id), zero the rest
//! 3. top-p P:        keep the smallest set of most likely tokens whose probability reaches P
//!                    ("nucleus"), zero the rest
//! 4. min-p M:        keep the tokens with p >= M * max(p), zero the rest
//! 5. typical-p Q:    keep the tokens whose surprise -ln p is closest to the entropy
//!                    H = -sum p ln p, fewest first, until their probability reaches Q
//! then draw:  u ~ uniform[0, 1),  the first token whose cumulative probability (in id
//!             order) exceeds u
//! ```
//!
//! Before all of them, the history-dependent penalties of [`crate::penalties`] (repetition
//! penalty, no-repeat n-gram, presence and frequency penalties) change the logits
//! themselves, so they apply to greedy decoding too; the five knobs above do not (greedy
//! takes the argmax of the penalised logits), as in transformers. The whole order:
//!
//! ```text
//! repetition penalty -> no-repeat n-gram -> presence/frequency -> temperature -> top-k -> top-p -> min-p -> typical-p
//! ```
//!
//! Shapes: logits `[n_vocab]` in, one token id out. Numerical care: probabilities are
//! computed in f64 with the crate's own `exp` (identical on every platform) and the draw
//! comes from the crate's xorshift held in the [`Sampler`], so the same seed gives the same
//! tokens everywhere. Typical-p needs no logarithm: `-ln p_i - H` is `E_p[s] - s_i` for the
//! scaled logits `s` (the `ln` of the softmax's sum cancels), so it too is the same
//! everywhere.

use crate::error::{Error, Result};
use crate::math::exp_f64;
use crate::rng::XorShift64;

/// Index of the largest logit; on a tie, the lowest index (as numpy's `argmax`). Greedy
/// decoding's choice.
///
/// Edge cases, so that it never panics: an empty slice gives 0, and a NaN is never the
/// largest (unlike numpy, which returns the first NaN), so NaNs are skipped unless every
/// value is NaN (then 0). Logits that may not be finite should be checked first:
/// [`Sampler::sample`] refuses them, and a [`Generator`](crate::generate::Generator) reports
/// [`Error::NonFiniteLogits`] before choosing.
///
/// ```
/// assert_eq!(gpt2_edu::sample::argmax(&[0.1, 2.0, -1.0, 2.0]), 1);
/// assert_eq!(gpt2_edu::sample::argmax(&[f32::NAN, -3.0]), 1);
/// ```
pub fn argmax(logits: &[f32]) -> u32 {
    let (mut best, mut best_logit) = (0, f32::NEG_INFINITY);
    for (i, &logit) in logits.iter().enumerate() {
        if logit > best_logit {
            (best, best_logit) = (i, logit); // (a NaN is never greater)
        }
    }
    best as u32
}

/// Checks that `logits` can be turned into probabilities: at least one, no NaN, no `+inf`,
/// and at least one finite (a `-inf` logit is a token made impossible, which is allowed).
pub fn check_logits(logits: &[f32]) -> Result<()> {
    if let Some(i) = logits.iter().position(|l| l.is_nan() || *l == f32::INFINITY) {
        return Err(Error::InvalidArgument(format!(
            "logit {i} is {}: logits must be numbers (NaN and +inf have no probability)",
            logits[i]
        )));
    }
    if !logits.iter().any(|l| l.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "no finite logit among {}: every token would be impossible",
            logits.len()
        )));
    }
    Ok(())
}

/// `ln(sum(exp(logits)))`, in f64, the largest logit subtracted first so nothing overflows
/// (`-inf` logits add nothing). The log-softmax of token `i` is `logits[i] - log_sum_exp`.
fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l)) as f64;
    let sum: f64 = logits.iter().map(|&l| exp_f64(l as f64 - max)).sum();
    max + sum.ln()
}

/// The natural log of the probability the model gives token `id`: `log_softmax(logits)[id]`,
/// at temperature 1 and before any sampling filter (what llama.cpp and OpenAI's `logprobs`
/// report). `logits` must pass [`check_logits`] and `id` must be an index of it.
///
/// ```
/// use gpt2_edu::sample::logprob;
/// let logits = [2.0f32.ln(), 1.0f32.ln(), 1.0f32.ln()]; // probabilities 1/2, 1/4, 1/4
/// assert!((logprob(&logits, 0).unwrap() - 0.5f64.ln()).abs() < 1e-7);
/// assert!(logprob(&logits, 3).is_err());
/// ```
pub fn logprob(logits: &[f32], id: u32) -> Result<f64> {
    check_logits(logits)?;
    let logit = *logits
        .get(id as usize)
        .ok_or(Error::TokenOutOfRange { token: id, n_vocab: logits.len() })?;
    Ok(logit as f64 - log_sum_exp(logits))
}

/// The `n` most likely tokens with their log-probabilities (as [`logprob`]), most likely
/// first, ties to the lower id; fewer when there are fewer logits. Costs one pass over the
/// logits plus `n` insertions, and allocates only the `n` results.
///
/// ```
/// use gpt2_edu::sample::top_logprobs;
/// let top = top_logprobs(&[0.0, 3.0, 1.0, 3.0], 2).unwrap();
/// assert_eq!(top.iter().map(|&(id, _)| id).collect::<Vec<_>>(), [1, 3]);
/// ```
pub fn top_logprobs(logits: &[f32], n: usize) -> Result<Vec<(u32, f64)>> {
    check_logits(logits)?;
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(n.min(logits.len()) + 1);
    for (id, &logit) in logits.iter().enumerate() {
        if top.len() == n && top.last().is_none_or(|&(_, worst)| logit <= worst) {
            continue; // (with n = 0, nothing is ever kept)
        }
        let at = top.partition_point(|&(_, l)| l >= logit); // after equal ones: lower id first
        top.insert(at, (id as u32, logit));
        top.truncate(n);
    }
    let total = log_sum_exp(logits);
    Ok(top.into_iter().map(|(id, logit)| (id, logit as f64 - total)).collect())
}

/// How to choose each token. The default is greedy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature, `>= 0`; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`k >= 1`); `None` keeps all.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p`
    /// (`0 < p <= 1`); `None` keeps all.
    pub top_p: Option<f32>,
    /// Keep the tokens whose probability is at least `m` times the most likely one's
    /// (`0 < m <= 1`; transformers' `min_p`); `None` keeps all.
    pub min_p: Option<f32>,
    /// Locally typical sampling (`0 < q <= 1`; transformers' `typical_p`): keep the tokens
    /// whose `-ln p` is closest to the entropy, until their probability reaches `q`; `None`
    /// (or 1) keeps all.
    pub typical_p: Option<f32>,
}

impl SamplingParams {
    /// Always the most likely token.
    pub const GREEDY: Self =
        Self { temperature: 0.0, top_k: None, top_p: None, min_p: None, typical_p: None };

    /// Checks the ranges: temperature finite and `>= 0`, top-k `>= 1`, top-p, min-p and
    /// typical-p in `(0, 1]`.
    pub fn validate(&self) -> Result<()> {
        let t = self.temperature;
        if !(t.is_finite() && t >= 0.0) {
            return Err(Error::InvalidSampling(format!(
                "temperature must be a finite number >= 0 (0 = greedy), found {t}"
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::InvalidSampling(
                "top-k must be at least 1 (1 = greedy), found 0".into(),
            ));
        }
        for (name, value) in
            [("top-p", self.top_p), ("min-p", self.min_p), ("typical-p", self.typical_p)]
        {
            if let Some(p) = value.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
                return Err(Error::InvalidSampling(format!("{name} must be in (0, 1], found {p}")));
            }
        }
        Ok(())
    }

    /// Whether these parameters always pick the most likely token.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == Some(1)
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::GREEDY
    }
}

/// The probabilities the sampler draws from, after temperature, top-k, top-p, min-p and
/// typical-p: `[n_vocab]`, summing to 1, zero outside the kept tokens. Greedy parameters
/// give 1 on the most likely token. Out-of-range parameters ([`SamplingParams::validate`])
/// and logits that fail [`check_logits`] are errors.
///
/// ```
/// use gpt2_edu::sample::{distribution, SamplingParams};
/// let logits = [2.0f32.ln(), 1.0f32.ln(), 1.0f32.ln()]; // softmax: 1/2, 1/4, 1/4
/// let greedy = SamplingParams { temperature: 1.0, top_k: None, top_p: None, ..SamplingParams::GREEDY };
/// let p = distribution(&logits, &greedy).unwrap();
/// assert!((p[0] - 0.5).abs() < 1e-7 && (p[2] - 0.25).abs() < 1e-7);
/// let p = distribution(&logits, &SamplingParams { top_k: Some(2), ..greedy }).unwrap();
/// assert!((p[0] - 2.0 / 3.0).abs() < 1e-7 && p[2] == 0.0); // tie: the lower id stays
/// let p = distribution(&logits, &SamplingParams { min_p: Some(0.6), ..greedy }).unwrap();
/// assert_eq!(p, vec![1.0, 0.0, 0.0]); // 1/4 < 0.6 * 1/2
/// assert!(distribution(&logits, &SamplingParams { top_k: Some(0), ..greedy }).is_err());
/// ```
pub fn distribution(logits: &[f32], params: &SamplingParams) -> Result<Vec<f64>> {
    params.validate()?;
    check_logits(logits)?;
    let mut buffers = Buffers::default();
    fill_distribution(logits, params, &mut buffers);
    Ok(buffers.probs)
}

/// The logits the sampler draws from, as transformers' warpers leave them: `logits / T`
/// for the tokens that temperature, top-k, top-p, min-p and typical-p keep, `-inf` for the
/// rest, `[n_vocab]` in f64. Their softmax is [`distribution`]. With temperature 0 no
/// warper applies (as in transformers' greedy search): the logits themselves, whose argmax
/// greedy takes. The same errors as [`distribution`].
///
/// ```
/// use gpt2_edu::sample::{warped_logits, SamplingParams};
/// let logits = [2.0f32, 1.0, 0.0];
/// let top_2 = SamplingParams { temperature: 0.5, top_k: Some(2), ..SamplingParams::GREEDY };
/// assert_eq!(warped_logits(&logits, &top_2).unwrap(), vec![4.0, 2.0, f64::NEG_INFINITY]);
/// assert_eq!(warped_logits(&logits, &SamplingParams::GREEDY).unwrap(), vec![2.0, 1.0, 0.0]);
/// ```
pub fn warped_logits(logits: &[f32], params: &SamplingParams) -> Result<Vec<f64>> {
    params.validate()?;
    check_logits(logits)?;
    if params.temperature == 0.0 {
        return Ok(logits.iter().map(|&l| l as f64).collect());
    }
    let mut buffers = Buffers::default();
    filter(logits, params, &mut buffers);
    let mut warped = vec![f64::NEG_INFINITY; logits.len()];
    for &i in &buffers.kept {
        warped[i] = buffers.scaled[i];
    }
    Ok(warped)
}

/// The sampler's reusable buffers, each `[n_vocab]` once grown: a decode step allocates
/// nothing.
#[derive(Debug, Clone, Default)]
struct Buffers {
    /// `logits / T` in f64.
    scaled: Vec<f64>,
    /// The ids still in play (after top-k, then top-p, min-p and typical-p).
    kept: Vec<usize>,
    /// The probabilities.
    probs: Vec<f64>,
}

/// [`distribution`] into `buffers.probs`, for valid parameters and logits.
fn fill_distribution(logits: &[f32], params: &SamplingParams, buffers: &mut Buffers) {
    if params.is_greedy() {
        let probs = &mut buffers.probs;
        probs.clear();
        probs.resize(logits.len(), 0.0);
        probs[argmax(logits) as usize] = 1.0; // logits are non-empty (check_logits)
        return;
    }
    filter(logits, params, buffers);
}

/// The five knobs in order, for valid parameters and logits with `temperature > 0`: the
/// scaled logits, the kept ids and their renormalised probabilities into `buffers`.
fn filter(logits: &[f32], params: &SamplingParams, buffers: &mut Buffers) {
    let Buffers { scaled, kept, probs } = buffers;
    // 1. Temperature.
    divide_by_temperature(logits, params.temperature, scaled);
    // 2. Top-k.
    top_k_ids(scaled, params.top_k, kept);
    // Softmax over the kept tokens.
    softmax_over(scaled, kept, probs);
    // 3. Top-p.
    if let Some(p) = params.top_p.filter(|&p| p < 1.0) {
        keep_top_p(probs, kept, p);
    }
    // 4. Min-p.
    if let Some(m) = params.min_p {
        keep_min_p(probs, kept, m);
    }
    // 5. Typical-p.
    if let Some(q) = params.typical_p.filter(|&q| q < 1.0) {
        keep_typical(scaled, probs, kept, q);
    }
}

/// `logits / T` in f64 into `scaled`, `[n_vocab]` (`temperature > 0`).
fn divide_by_temperature(logits: &[f32], temperature: f32, scaled: &mut Vec<f64>) {
    let t = temperature as f64;
    scaled.clear();
    scaled.extend(logits.iter().map(|&l| l as f64 / t));
}

/// Top-k: the ids of the `top_k` largest scaled logits (`[n_vocab]`) into `kept`, ties to
/// the lower id, in no particular order; every id `0..n_vocab` when `top_k` is `None` or
/// not below `n_vocab` (`top_k` is at least 1: validated).
fn top_k_ids(scaled: &[f64], top_k: Option<usize>, kept: &mut Vec<usize>) {
    let n = scaled.len();
    kept.clear();
    kept.extend(0..n);
    if let Some(k) = top_k.filter(|&k| (1..n).contains(&k)) {
        kept.select_nth_unstable_by(k - 1, |&a, &b| by_value_then_id(scaled[a], a, scaled[b], b));
        kept.truncate(k);
    }
}

/// Softmax over the `kept` ids only into `probs`: `[n_vocab]`, zero outside them. The
/// largest kept value is subtracted first, so no `exp` overflows.
fn softmax_over(scaled: &[f64], kept: &[usize], probs: &mut Vec<f64>) {
    probs.clear();
    probs.resize(scaled.len(), 0.0);
    let max = kept.iter().map(|&i| scaled[i]).fold(f64::NEG_INFINITY, f64::max);
    for &i in kept {
        probs[i] = exp_f64(scaled[i] - max);
    }
    normalise(probs);
}

/// Top-p: keeps the smallest most-likely-first prefix of `kept` whose probability reaches
/// `p`, zeroes the other kept ids in `probs` (`[n_vocab]`), drops them from `kept` and
/// renormalises. Sorts `kept` most likely first on the way.
fn keep_top_p(probs: &mut [f64], kept: &mut Vec<usize>, p: f32) {
    kept.sort_unstable_by(|&a, &b| by_value_then_id(probs[a], a, probs[b], b));
    let mut cumulative = 0.0;
    let mut keep = kept.len();
    for (rank, &i) in kept.iter().enumerate() {
        cumulative += probs[i];
        if cumulative >= p as f64 {
            keep = rank + 1;
            break;
        }
    }
    for &i in &kept[keep..] {
        probs[i] = 0.0;
    }
    kept.truncate(keep);
    normalise(probs);
}

/// Min-p (transformers' `MinPLogitsWarper`): keeps the kept ids whose probability is at
/// least `min_p` times the largest, zeroes the others in `probs` and renormalises. The
/// most likely token always stays (`min_p <= 1`).
fn keep_min_p(probs: &mut [f64], kept: &mut Vec<usize>, min_p: f32) {
    let top = kept.iter().map(|&i| probs[i]).fold(0.0, f64::max);
    let threshold = min_p as f64 * top;
    drop_where(probs, kept, |p, _| p < threshold);
}

/// Typical-p (transformers' `TypicalLogitsWarper`): orders the kept ids by how far their
/// surprise `-ln p_i` is from the entropy `H = -sum p ln p` (nearest first), takes the
/// shortest prefix whose probability reaches `mass`, keeps every id at most as far as its
/// last, zeroes the others in `probs` and renormalises. `-ln p_i - H = E_p[s] - s_i` for
/// the scaled logits `s`, so no logarithm is taken.
fn keep_typical(scaled: &[f64], probs: &mut [f64], kept: &mut Vec<usize>, mass: f32) {
    let mean: f64 = kept.iter().map(|&i| probs[i] * scaled[i]).sum(); // E_p[s]
    let distance = |i: usize| (mean - scaled[i]).abs(); // |-ln p_i - H|
    kept.sort_unstable_by(|&a, &b| distance(a).total_cmp(&distance(b)).then(a.cmp(&b)));
    let mut cumulative = 0.0;
    let mut last = kept.len() - 1; // kept is never empty: the top token survives everything
    for (rank, &i) in kept.iter().enumerate() {
        cumulative += probs[i];
        if cumulative >= mass as f64 {
            last = rank;
            break;
        }
    }
    let threshold = distance(kept[last]);
    drop_where(probs, kept, |_, i| distance(i) > threshold);
}

/// Drops from `kept` the ids for which `drop(probability, id)` holds, zeroes their
/// probabilities and renormalises.
fn drop_where(probs: &mut [f64], kept: &mut Vec<usize>, drop: impl Fn(f64, usize) -> bool) {
    kept.retain(|&i| {
        let dropped = drop(probs[i], i);
        if dropped {
            probs[i] = 0.0;
        }
        !dropped
    });
    normalise(probs);
}

/// Descending by value, then ascending by id: the order "most likely first, ties to the
/// lower id". NaN sorts last.
fn by_value_then_id(a: f64, a_id: usize, b: f64, b_id: usize) -> std::cmp::Ordering {
    b.partial_cmp(&a).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan())).then(a_id.cmp(&b_id))
}

/// Divides every probability by their sum, so that they sum to 1.
fn normalise(probs: &mut [f64]) {
    let total: f64 = probs.iter().sum();
    for p in probs.iter_mut() {
        *p /= total;
    }
}

/// The token whose interval contains `u`: the first id (in id order) whose cumulative
/// probability exceeds `u` (`0 <= u < 1`). Zero-probability tokens are never chosen.
pub fn draw(probs: &[f64], u: f64) -> u32 {
    let mut cumulative = 0.0;
    let mut last_possible = 0;
    for (id, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            cumulative += p;
            last_possible = id;
            if u < cumulative {
                return id as u32;
            }
        }
    }
    last_possible as u32 // u fell past a total that rounding left just below 1
}

/// Chooses tokens with fixed [`SamplingParams`] and its own seeded generator, reusing its
/// buffers from token to token.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: XorShift64,
    buffers: Buffers,
}

impl Sampler {
    /// A sampler; errors on out-of-range parameters or seed 0.
    pub fn new(params: SamplingParams, seed: u64) -> Result<Self> {
        params.validate()?;
        Ok(Self { params, rng: XorShift64::new(seed)?, buffers: Buffers::default() })
    }

    /// The parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Chooses the next token from `logits` (`[n_vocab]`). Greedy parameters take the
    /// argmax without touching the generator. Logits that fail [`check_logits`] (none, a
    /// NaN, `+inf`) are an error, never a silent token 0.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        check_logits(logits)?;
        if self.params.is_greedy() {
            return Ok(argmax(logits));
        }
        fill_distribution(logits, &self.params, &mut self.buffers);
        Ok(draw(&self.buffers.probs, self.rng.next_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> SamplingParams {
        SamplingParams { temperature, top_k, top_p, ..SamplingParams::GREEDY }
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[-5.0]), 0);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1e30]), 1);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_that_reaches_p() {
        // Probabilities 0.5, 0.3, 0.15, 0.05, shuffled over the ids.
        let logits = [0.15f32, 0.5, 0.05, 0.3].map(f32::ln);
        let kept = |p: f32| -> Vec<usize> {
            let probs = distribution(&logits, &params(1.0, None, Some(p))).unwrap();
            (0..4).filter(|&i| probs[i] > 0.0).collect()
        };
        // (Points sit just off the boundaries 0.5, 0.8 and 0.95: exactly on one, whether
        // 0.5 + 0.3 "reaches" 0.8 depends on the last bit of each.)
        assert_eq!(kept(0.3), vec![1]);
        assert_eq!(kept(0.499), vec![1]);
        assert_eq!(kept(0.501), vec![1, 3]);
        assert_eq!(kept(0.799), vec![1, 3]);
        assert_eq!(kept(0.801), vec![0, 1, 3]);
        assert_eq!(kept(0.949), vec![0, 1, 3]);
        assert_eq!(kept(0.951), vec![0, 1, 2, 3]);
        assert_eq!(kept(1.0), vec![0, 1, 2, 3]);
        let probs = distribution(&logits, &params(1.0, None, Some(0.7))).unwrap();
        assert!((probs[1] - 0.625).abs() < 1e-6 && (probs[3] - 0.375).abs() < 1e-6, "renormalised");
    }

    #[test]
    fn min_p_keeps_the_tokens_within_a_factor_of_the_most_likely() {
        // Probabilities 0.5, 0.3, 0.15, 0.05 as in the top-p test: min-p M keeps p >= M / 2.
        let logits = [0.15f32, 0.5, 0.05, 0.3].map(f32::ln);
        let kept = |m: f32| -> Vec<usize> {
            let p = SamplingParams { min_p: Some(m), ..params(1.0, None, None) };
            let probs = distribution(&logits, &p).unwrap();
            (0..4).filter(|&i| probs[i] > 0.0).collect()
        };
        assert_eq!(kept(1.0), vec![1]);
        assert_eq!(kept(0.61), vec![1]); // 0.3 < 0.305
        assert_eq!(kept(0.59), vec![1, 3]);
        assert_eq!(kept(0.31), vec![1, 3]); // 0.15 < 0.155
        assert_eq!(kept(0.29), vec![0, 1, 3]);
        assert_eq!(kept(0.09), vec![0, 1, 2, 3]);
        let p = SamplingParams { min_p: Some(0.5), ..params(1.0, None, None) };
        let probs = distribution(&logits, &p).unwrap();
        assert!((probs[1] - 0.625).abs() < 1e-6 && (probs[3] - 0.375).abs() < 1e-6, "renormalised");
    }

    #[test]
    fn typical_p_keeps_the_tokens_whose_surprise_is_nearest_the_entropy() {
        // Probabilities 0.5, 0.3, 0.15, 0.05: entropy H = 1.1421 nats; surprises -ln p are
        // 0.693, 1.204, 1.897, 2.996, at distances 0.449, 0.062, 0.755, 1.854 from H. So
        // the order is 0.3, 0.5, 0.15, 0.05, with cumulative mass 0.3, 0.8, 0.95, 1.
        let logits = [0.15f32, 0.5, 0.05, 0.3].map(f32::ln);
        let kept = |q: f32| -> Vec<usize> {
            let p = SamplingParams { typical_p: Some(q), ..params(1.0, None, None) };
            let probs = distribution(&logits, &p).unwrap();
            (0..4).filter(|&i| probs[i] > 0.0).collect()
        };
        assert_eq!(kept(0.2), vec![3], "the most likely token is not the most typical");
        assert_eq!(kept(0.5), vec![1, 3]);
        assert_eq!(kept(0.85), vec![0, 1, 3]);
        assert_eq!(kept(0.97), vec![0, 1, 2, 3]);
        assert_eq!(kept(1.0), vec![0, 1, 2, 3]);
        // Warped logits: the kept ones unchanged (T = 1), the others -inf.
        let p = SamplingParams { typical_p: Some(0.5), ..params(1.0, None, None) };
        let warped = warped_logits(&logits, &p).unwrap();
        assert_eq!(warped[1], logits[1] as f64);
        assert_eq!(warped[0], f64::NEG_INFINITY);
    }

    #[test]
    fn temperature_then_top_k_then_top_p() {
        // At T = 0.5 the probabilities are proportional to 4, 1, 1 (squares of 2, 1, 1):
        // 2/3, 1/6, 1/6. Top-p 0.6 then keeps only the first.
        let logits = [2.0f32.ln(), 0.0, 0.0];
        let probs = distribution(&logits, &params(0.5, None, None)).unwrap();
        assert!((probs[0] - 2.0 / 3.0).abs() < 1e-7);
        let probs = distribution(&logits, &params(0.5, None, Some(0.6))).unwrap();
        assert_eq!(probs, vec![1.0, 0.0, 0.0]);
        // Top-k 2 then top-p 0.9: of 2/3 and 1/6 renormalised (0.8, 0.2), 0.9 needs both.
        let probs = distribution(&logits, &params(0.5, Some(2), Some(0.9))).unwrap();
        assert!((probs[0] - 0.8).abs() < 1e-7 && (probs[1] - 0.2).abs() < 1e-7 && probs[2] == 0.0);
    }

    #[test]
    fn draw_inverts_the_cumulative_distribution() {
        let probs = [0.25, 0.0, 0.5, 0.25];
        assert_eq!(draw(&probs, 0.0), 0);
        assert_eq!(draw(&probs, 0.2499), 0);
        assert_eq!(draw(&probs, 0.25), 2, "a zero-probability token is skipped");
        assert_eq!(draw(&probs, 0.7499), 2);
        assert_eq!(draw(&probs, 0.75), 3);
        assert_eq!(draw(&probs, 0.999_999_999), 3);
    }

    #[test]
    fn out_of_range_parameters_are_errors() {
        for (t, k, p, needle) in [
            (-0.1, None, None, "temperature must be a finite number >= 0"),
            (f32::NAN, None, None, "found NaN"),
            (f32::INFINITY, None, None, "found inf"),
            (1.0, Some(0), None, "top-k must be at least 1"),
            (1.0, None, Some(0.0), "top-p must be in (0, 1], found 0"),
            (1.0, None, Some(1.5), "found 1.5"),
            (1.0, None, Some(f32::NAN), "found NaN"),
        ] {
            let error = Sampler::new(params(t, k, p), 1).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
        for (m, needle) in [
            (0.0, "min-p must be in (0, 1], found 0"),
            (-0.5, "found -0.5"),
            (1.5, "found 1.5"),
            (f32::NAN, "found NaN"),
            (f32::INFINITY, "found inf"),
        ] {
            let p = SamplingParams { min_p: Some(m), ..params(1.0, None, None) };
            let error = Sampler::new(p, 1).unwrap_err().to_string();
            assert!(error.contains(needle), "min-p {m}: {error}");
            let p = SamplingParams { typical_p: Some(m), ..params(1.0, None, None) };
            let error = warped_logits(&[1.0], &p).unwrap_err().to_string();
            assert!(error.contains(&needle.replace("min-p", "typical-p")), "typical {m}: {error}");
        }
        assert_eq!(Sampler::new(SamplingParams::GREEDY, 0).unwrap_err(), Error::ZeroSeed);
        let error = distribution(&[1.0, 2.0], &params(1.0, Some(0), None)).unwrap_err();
        assert!(error.to_string().contains("top-k must be at least 1"), "{error}");
    }

    #[test]
    fn logits_that_are_not_numbers_are_errors_not_token_0() {
        for greedy in [true, false] {
            let p = if greedy { SamplingParams::GREEDY } else { params(1.0, None, None) };
            let mut sampler = Sampler::new(p, 3).unwrap();
            for (logits, needle) in [
                (&[f32::NAN, 1.0][..], "logit 0 is NaN"),
                (&[1.0, f32::INFINITY][..], "logit 1 is inf"),
                (&[][..], "no finite logit among 0"),
                (&[f32::NEG_INFINITY; 3][..], "no finite logit among 3"),
            ] {
                let error = sampler.sample(logits).unwrap_err().to_string();
                assert!(error.contains(needle), "{greedy}: {error}");
            }
            // -inf is a banned token, which is allowed: never drawn.
            for _ in 0..50 {
                assert_eq!(sampler.sample(&[f32::NEG_INFINITY, 0.5, f32::NEG_INFINITY]), Ok(1));
            }
        }
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[0.5, f32::NAN, 0.7]), 2);
    }

    #[test]
    fn logprobs_are_log_softmax_and_top_n_is_ordered() {
        let logits = [0.5f32, -1.0, 2.0, 2.0, f32::NEG_INFINITY];
        let exps: Vec<f64> = logits.iter().map(|&l| (l as f64).exp()).collect();
        let total: f64 = exps.iter().sum();
        for (id, e) in exps.iter().enumerate() {
            let (expected, found) = ((e / total).ln(), logprob(&logits, id as u32).unwrap());
            assert!(found == expected || (found - expected).abs() < 1e-12, "{found} {expected}");
        }
        let top = top_logprobs(&logits, 3).unwrap();
        assert_eq!(top.iter().map(|&(id, _)| id).collect::<Vec<_>>(), [2, 3, 0]);
        assert_eq!(top[0].1, logprob(&logits, 2).unwrap());
        assert_eq!(top_logprobs(&logits, 0).unwrap(), vec![]);
        assert_eq!(top_logprobs(&logits, 9).unwrap().len(), 5);
        assert!(logprob(&[f32::NAN], 0).is_err());
    }
}
