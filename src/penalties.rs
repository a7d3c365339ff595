//! Penalties: changes to the logits that depend on the text so far, applied before any
//! sampling knob (and before the greedy choice), against the loops of greedy decoding
//! ("world world world"). Three of them, applied in this order (transformers' order; it
//! has no presence or frequency penalty, which come from OpenAI's API):
//!
//! ```text
//! 1. repetition penalty R (CTRL; transformers' RepetitionPenaltyLogitsProcessor):
//!      for every distinct id t in the prompt and the generated text (a set, not counts):
//!      l[t] = l[t] / R  if l[t] > 0,   l[t] * R  otherwise          R > 1 discourages repeats
//! 2. no-repeat n-gram N (NoRepeatNGramLogitsProcessor):
//!      t would complete an n-gram (the last N-1 tokens, then t) that is already in the text:
//!      l[t] = -inf                                                  N = 1 bans every seen token
//! 3. presence P and frequency F (OpenAI's definitions), c[t] = how often t was generated:
//!      l[t] = l[t] - P * (c[t] > 0) - F * c[t]
//! ```
//!
//! Shapes: logits `[n_vocab]` in, the same logits changed in place out. "Generated" means
//! the tokens a [`Generator`](crate::generate::Generator) appended as its own output (by
//! sampling, or by [`choose`](crate::generate::Generator::choose)); the prompt and text
//! added with [`feed`](crate::generate::Generator::feed) are context: they count for the
//! repetition penalty and the n-grams, not for presence and frequency. The counts of
//! earlier turns stay: a generator that is fed a second turn still remembers what it
//! generated in the first.
//!
//! Cost: a [`History`] keeps what the penalties need up to date token by token, so a step
//! touches only the distinct ids seen so far (repetition), the distinct ids generated
//! (presence and frequency) and one table lookup (n-grams), never the whole vocabulary or
//! the whole text. Numerical care: the repetition penalty divides and multiplies in f32,
//! as transformers does on f32 logits (the same bits); presence and frequency subtract in
//! f64 and round once.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// The penalties' strengths. The default, [`Penalties::NONE`], changes nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalties {
    /// The repetition penalty `R > 0`: a seen token's positive logit is divided by it, a
    /// negative one multiplied. 1 is none; above 1 discourages repeats, below 1 encourages
    /// them.
    pub repetition_penalty: f32,
    /// Ban every token that would repeat an n-gram of this size (`N >= 1`); `None` bans
    /// nothing.
    pub no_repeat_ngram: Option<usize>,
    /// Subtracted once from the logit of every token generated at least once (any finite
    /// number; OpenAI allows -2 to 2). 0 is none.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit once per time it was generated (any finite number).
    /// 0 is none.
    pub frequency_penalty: f32,
}

impl Penalties {
    /// No penalty: the logits are left as they are.
    pub const NONE: Self = Self {
        repetition_penalty: 1.0,
        no_repeat_ngram: None,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
    };

    /// Checks the ranges: the repetition penalty finite and `> 0`, the n-gram size at
    /// least 1, presence and frequency finite.
    pub fn validate(&self) -> Result<()> {
        let r = self.repetition_penalty;
        if !(r.is_finite() && r > 0.0) {
            return Err(Error::InvalidSampling(format!(
                "the repetition penalty must be a finite number > 0 (1 = none), found {r}"
            )));
        }
        if self.no_repeat_ngram == Some(0) {
            return Err(Error::InvalidSampling(
                "the no-repeat n-gram size must be at least 1 (1 bans every token seen), found 0"
                    .into(),
            ));
        }
        for (name, value) in
            [("presence", self.presence_penalty), ("frequency", self.frequency_penalty)]
        {
            if !value.is_finite() {
                return Err(Error::InvalidSampling(format!(
                    "the {name} penalty must be a finite number (0 = none), found {value}"
                )));
            }
        }
        Ok(())
    }

    /// Whether these penalties leave every logit as it is.
    pub fn is_none(&self) -> bool {
        *self == Self::NONE
    }
}

impl Default for Penalties {
    fn default() -> Self {
        Self::NONE
    }
}

/// What the penalties remember of a text, kept up to date one token at a time: the ids
/// seen (for the repetition penalty), how often each was generated (presence and
/// frequency), and which tokens followed each (N-1)-token prefix (no-repeat n-gram).
///
/// ```
/// use gpt2_edu::penalties::{History, Penalties};
/// let penalties = Penalties { repetition_penalty: 2.0, no_repeat_ngram: Some(2), ..Penalties::NONE };
/// let mut history = History::new(penalties, 4).unwrap();
/// history.push_context(&[0, 1]).unwrap(); // the prompt: "hello world"
/// history.push_generated(0).unwrap();     // then "hello"
/// let mut logits = [1.0, -1.0, 0.5, 3.0];
/// history.apply(&mut logits);
/// // 0 and 1 were seen: 1.0 / 2 and -1.0 * 2. "hello world" is a bigram of the text and
/// // the text ends in "hello", so "world" (1) would repeat it: banned.
/// assert_eq!(logits, [0.5, f32::NEG_INFINITY, 0.5, 3.0]);
/// ```
#[derive(Debug, Clone)]
pub struct History {
    penalties: Penalties,
    /// The prompt, fed and generated tokens, in order (the n-grams' tail is read here).
    tokens: Vec<u32>,
    /// `[n_vocab]`: whether each id is in `tokens`.
    seen: Vec<bool>,
    /// The distinct ids of `tokens`, in order of first appearance.
    seen_ids: Vec<u32>,
    /// `[n_vocab]`: how often each id was generated.
    counts: Vec<u32>,
    /// The distinct generated ids, in order of first appearance.
    generated_ids: Vec<u32>,
    /// Every (N-1)-token prefix of the text, with the distinct tokens that followed it.
    followers: HashMap<Vec<u32>, Vec<u32>>,
}

impl History {
    /// An empty history for a vocabulary of `n_vocab` ids; out-of-range penalties
    /// ([`Penalties::validate`]) are an error.
    pub fn new(penalties: Penalties, n_vocab: usize) -> Result<Self> {
        penalties.validate()?;
        Ok(Self {
            penalties,
            tokens: Vec::new(),
            seen: vec![false; n_vocab],
            seen_ids: Vec::new(),
            counts: vec![0; n_vocab],
            generated_ids: Vec::new(),
            followers: HashMap::new(),
        })
    }

    /// The penalties.
    pub fn penalties(&self) -> &Penalties {
        &self.penalties
    }

    /// Appends context that was not generated (the prompt, a fed turn): it counts for the
    /// repetition penalty and the n-grams only. An id outside the vocabulary is an error,
    /// and then nothing is appended.
    pub fn push_context(&mut self, tokens: &[u32]) -> Result<()> {
        self.check(tokens)?;
        for &token in tokens {
            self.push(token);
        }
        Ok(())
    }

    /// Appends one generated token: it counts for every penalty.
    pub fn push_generated(&mut self, token: u32) -> Result<()> {
        self.check(&[token])?;
        self.push(token);
        let count = &mut self.counts[token as usize];
        if *count == 0 {
            self.generated_ids.push(token);
        }
        *count = count.saturating_add(1);
        Ok(())
    }

    /// The three penalties, in order, on `logits` (`[n_vocab]`, or fewer: ids past its end
    /// are left out).
    pub fn apply(&self, logits: &mut [f32]) {
        let Penalties { repetition_penalty: r, no_repeat_ngram, .. } = self.penalties;
        if r != 1.0 {
            for &t in &self.seen_ids {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l < 0.0 { *l * r } else { *l / r }; // transformers' `score < 0`
                }
            }
        }
        if let Some(n) = no_repeat_ngram {
            for &t in self.banned(n) {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        self.apply_presence_and_frequency(logits);
    }

    /// `l[t] -= P * (c[t] > 0) + F * c[t]` over the generated ids.
    fn apply_presence_and_frequency(&self, logits: &mut [f32]) {
        let (p, f) = (self.penalties.presence_penalty as f64, self.penalties.frequency_penalty);
        if p == 0.0 && f == 0.0 {
            return;
        }
        for &t in &self.generated_ids {
            if let Some(l) = logits.get_mut(t as usize) {
                let count = self.counts[t as usize] as f64;
                *l = (*l as f64 - p - f as f64 * count) as f32;
            }
        }
    }

    /// The tokens that would complete an `n`-gram already in the text: those that followed
    /// the text's last `n - 1` tokens before. None while the text is shorter than that.
    fn banned(&self, n: usize) -> &[u32] {
        let Some(start) = (self.tokens.len() + 1).checked_sub(n) else {
            return &[];
        };
        self.followers.get(&self.tokens[start..]).map_or(&[], Vec::as_slice)
    }

    /// Appends `token` to the text: seen, and a follower of the n-gram prefix before it.
    fn push(&mut self, token: u32) {
        if !self.seen[token as usize] {
            self.seen[token as usize] = true;
            self.seen_ids.push(token);
        }
        if let Some(n) = self.penalties.no_repeat_ngram
            && let Some(start) = (self.tokens.len() + 1).checked_sub(n)
        {
            let prefix = &self.tokens[start..];
            match self.followers.get_mut(prefix) {
                Some(followers) if followers.contains(&token) => {}
                Some(followers) => followers.push(token),
                None => {
                    self.followers.insert(prefix.to_vec(), vec![token]);
                }
            }
        }
        self.tokens.push(token);
    }

    /// Every id must be in the vocabulary.
    fn check(&self, tokens: &[u32]) -> Result<()> {
        let n_vocab = self.seen.len();
        match tokens.iter().find(|&&t| t as usize >= n_vocab) {
            Some(&token) => Err(Error::TokenOutOfRange { token, n_vocab }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(penalties: Penalties, context: &[u32], generated: &[u32]) -> History {
        let mut history = History::new(penalties, 6).unwrap();
        history.push_context(context).unwrap();
        for &t in generated {
            history.push_generated(t).unwrap();
        }
        history
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_seen_logits_once() {
        let penalties = Penalties { repetition_penalty: 2.0, ..Penalties::NONE };
        // 0 appears three times: still penalised once (a set, not counts).
        let history = history(penalties, &[0, 0, 2], &[0, 3]);
        let mut logits = [4.0, 4.0, -1.5, 0.0, 7.0, -3.0];
        history.apply(&mut logits);
        assert_eq!(logits, [2.0, 4.0, -3.0, 0.0, 7.0, -3.0]);
        let below_1 = Penalties { repetition_penalty: 0.5, ..Penalties::NONE };
        let mut logits = [4.0, 1.0, -1.0, 0.0, 0.0, 0.0];
        history_of(below_1, &[0, 2]).apply(&mut logits);
        assert_eq!(logits, [8.0, 1.0, -0.5, 0.0, 0.0, 0.0], "R < 1 encourages repeats");
    }

    fn history_of(penalties: Penalties, context: &[u32]) -> History {
        history(penalties, context, &[])
    }

    #[test]
    fn no_repeat_ngram_bans_what_followed_the_last_n_minus_1_tokens() {
        let ngram = |n| Penalties { no_repeat_ngram: Some(n), ..Penalties::NONE };
        let banned = |n, text: &[u32]| -> Vec<usize> {
            let mut logits = [0.0f32; 6];
            history_of(ngram(n), text).apply(&mut logits);
            (0..6).filter(|&i| logits[i] == f32::NEG_INFINITY).collect()
        };
        assert_eq!(banned(1, &[4, 1, 4]), vec![1, 4], "N = 1: every seen token");
        // Text 1 2 3 1 2: bigrams 12 23 31 12; the last token is 2, which was followed by 3.
        assert_eq!(banned(2, &[1, 2, 3, 1, 2]), vec![3]);
        // Trigrams 123 231 312; the last two are 1 2, followed by 3 before.
        assert_eq!(banned(3, &[1, 2, 3, 1, 2]), vec![3]);
        assert_eq!(banned(3, &[1, 2, 3, 1, 5]), Vec::<usize>::new());
        // 1 followed by 2 and by 5: both banned after a final 1.
        assert_eq!(banned(2, &[1, 2, 1, 5, 1]), vec![2, 5]);
        assert_eq!(banned(4, &[1, 2]), Vec::<usize>::new(), "shorter than N - 1: nothing");
        assert_eq!(banned(3, &[]), Vec::<usize>::new());
    }

    #[test]
    fn presence_and_frequency_count_generated_tokens_only() {
        let penalties =
            Penalties { presence_penalty: 0.5, frequency_penalty: 0.25, ..Penalties::NONE };
        // 1 is in the prompt only: untouched. 2 generated three times, 4 once.
        let history = history(penalties, &[1, 1], &[2, 4, 2, 2]);
        let mut logits = [1.0; 6];
        history.apply(&mut logits);
        assert_eq!(logits, [1.0, 1.0, 1.0 - 0.5 - 0.75, 1.0, 1.0 - 0.5 - 0.25, 1.0]);
    }

    #[test]
    fn the_order_is_repetition_then_ngram_then_presence_and_frequency() {
        let penalties = Penalties {
            repetition_penalty: 2.0,
            no_repeat_ngram: Some(1),
            presence_penalty: 1.0,
            frequency_penalty: 0.0,
        };
        let mut logits = [3.0, 3.0, 3.0, 3.0, 3.0, 3.0];
        history(penalties, &[], &[5]).apply(&mut logits);
        assert_eq!(logits[5], f32::NEG_INFINITY, "banned stays banned");
        let penalties = Penalties { no_repeat_ngram: None, ..penalties };
        let mut logits = [3.0; 6];
        history(penalties, &[], &[5]).apply(&mut logits);
        assert_eq!(logits[5], 3.0 / 2.0 - 1.0, "divided first, then subtracted");
    }

    #[test]
    fn bad_strengths_and_ids_are_errors() {
        for (penalties, needle) in [
            (
                Penalties { repetition_penalty: 0.0, ..Penalties::NONE },
                "must be a finite number > 0",
            ),
            (Penalties { repetition_penalty: -1.0, ..Penalties::NONE }, "found -1"),
            (Penalties { repetition_penalty: f32::NAN, ..Penalties::NONE }, "found NaN"),
            (Penalties { repetition_penalty: f32::INFINITY, ..Penalties::NONE }, "found inf"),
            (Penalties { no_repeat_ngram: Some(0), ..Penalties::NONE }, "at least 1"),
            (Penalties { presence_penalty: f32::NAN, ..Penalties::NONE }, "presence penalty"),
            (
                Penalties { frequency_penalty: f32::NEG_INFINITY, ..Penalties::NONE },
                "frequency penalty must be a finite number (0 = none), found -inf",
            ),
        ] {
            let error = History::new(penalties, 4).unwrap_err();
            assert!(matches!(error, Error::InvalidSampling(_)));
            assert!(error.to_string().contains(needle), "{error}");
        }
        let mut history = History::new(Penalties::NONE, 4).unwrap();
        let out_of_range = Error::TokenOutOfRange { token: 4, n_vocab: 4 };
        assert_eq!(history.push_context(&[1, 4]), Err(out_of_range.clone()));
        assert_eq!(history.push_generated(4), Err(out_of_range));
        assert!(Penalties::NONE.is_none() && Penalties::default().is_none());
        // Fewer logits than the vocabulary (a limited vocabulary): no panic.
        let penalties = Penalties { repetition_penalty: 2.0, ..Penalties::NONE };
        let mut logits = [1.0, 1.0];
        self::history(penalties, &[3], &[1]).apply(&mut logits);
        assert_eq!(logits, [1.0, 0.5]);
    }
}
