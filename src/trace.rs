//! Tracing: the forward pass can record every intermediate tensor, so a learner can look at
//! exactly what the model computed (and the snapshot tests can pin it down).
//!
//! A [`Trace`] is passed as `&mut` through the forward pass. A *disabled* trace
//! ([`Trace::disabled`], what the plain forward functions use) costs one branch per
//! record point: names are built from `format_args!` only when the trace is enabled, and
//! no tensor is copied.
//!
//! ```
//! use gpt2_edu::{dummy, KvCache, Model, Tokenizer, Trace};
//! let (encoder, hparams, weights) = dummy::load_encoder_hparams_and_params();
//! let model = Model::new(hparams, weights).unwrap();
//! let mut cache = KvCache::new(&model.hparams).unwrap();
//! let mut trace = Trace::new();
//! model.forward_traced(&encoder.encode("hello world"), &mut cache, &mut trace).unwrap();
//! let ln_1 = trace.get("block.0.ln_1").unwrap();
//! assert_eq!(ln_1.shape, vec![2, 10]); // [n_seq, n_embd]
//! println!("{ln_1}");
//! ```

use std::fmt;

/// One recorded tensor: a name such as `block.0.attn.q.head.1`, its shape and its values
/// (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct TracedTensor {
    /// Where in the forward pass it was recorded.
    pub name: String,
    /// Its shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// The tensors recorded by one or more forward passes, in the order they were computed.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    enabled: bool,
    tensors: Vec<TracedTensor>,
}

/// Decimal places used when a trace is printed. Five decimals keep snapshot files stable
/// across platforms (whose `exp` and `tanh` may differ in the last bit) while showing far
/// more than a learner needs.
pub const PRINT_DECIMALS: usize = 5;

impl Trace {
    /// A trace that records.
    pub fn new() -> Self {
        Self { enabled: true, tensors: Vec::new() }
    }

    /// A trace that records nothing and costs (almost) nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Whether [`record`](Self::record) keeps anything.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Records a copy of `data` under `name` with `shape` (if enabled).
    pub fn record(&mut self, name: fmt::Arguments<'_>, shape: &[usize], data: &[f32]) {
        self.record_with(name, shape, || data.to_vec());
    }

    /// Records the tensor built by `make` (called only if enabled). Use this when the
    /// tensor has to be assembled first, such as one head cut out of a matrix.
    pub fn record_with(
        &mut self,
        name: fmt::Arguments<'_>,
        shape: &[usize],
        make: impl FnOnce() -> Vec<f32>,
    ) {
        if !self.enabled {
            return;
        }
        let data = make();
        debug_assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
        self.tensors.push(TracedTensor { name: name.to_string(), shape: shape.to_vec(), data });
    }

    /// Every recorded tensor, in order.
    pub fn tensors(&self) -> &[TracedTensor] {
        &self.tensors
    }

    /// The first tensor recorded under `name`.
    pub fn get(&self, name: &str) -> Option<&TracedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Forgets every recorded tensor (stays enabled or disabled).
    pub fn clear(&mut self) {
        self.tensors.clear();
    }
}

/// Formats `x` with `decimals` fixed decimals; `-0.000` becomes `0.000` so that a value
/// that rounds to zero prints the same on every platform, and infinities print as `-inf`
/// and `inf`.
pub fn format_fixed(x: f32, decimals: usize) -> String {
    if x.is_infinite() {
        return if x < 0.0 { "-inf".into() } else { "inf".into() };
    }
    let s = format!("{x:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}

impl fmt::Display for TracedTensor {
    /// The name and shape on one line, then the values as a grid whose last dimension runs
    /// across the line, with [`PRINT_DECIMALS`] decimals, right-aligned.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {:?}", self.name, self.shape)?;
        let cells: Vec<String> =
            self.data.iter().map(|&x| format_fixed(x, PRINT_DECIMALS)).collect();
        let width = cells.iter().map(String::len).max().unwrap_or(0);
        let n_cols = self.shape.last().copied().unwrap_or(1).max(1);
        for row in cells.chunks(n_cols) {
            let line: Vec<String> = row.iter().map(|c| format!("{c:>width$}")).collect();
            writeln!(f, "  {}", line.join(" "))?;
        }
        Ok(())
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for tensor in &self.tensors {
            writeln!(f, "{tensor}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_trace_records_nothing_and_never_builds_the_tensor() {
        let mut trace = Trace::disabled();
        trace.record_with(format_args!("x"), &[1], || panic!("must not be called"));
        assert!(trace.tensors().is_empty());
    }

    #[test]
    fn enabled_trace_keeps_name_shape_and_values() {
        let mut trace = Trace::new();
        let layer = 3;
        trace.record(format_args!("block.{layer}.x"), &[2], &[1.0, 2.0]);
        let t = trace.get("block.3.x").unwrap();
        assert_eq!((t.shape.clone(), t.data.clone()), (vec![2], vec![1.0, 2.0]));
    }

    #[test]
    fn fixed_formatting_normalises_negative_zero() {
        assert_eq!(format_fixed(-0.0, 3), "0.000");
        assert_eq!(format_fixed(-0.0001, 3), "0.000");
        assert_eq!(format_fixed(-0.0006, 3), "-0.001");
        assert_eq!(format_fixed(f32::NEG_INFINITY, 3), "-inf");
        assert_eq!(format_fixed(1.5, 2), "1.50");
    }

    #[test]
    fn display_is_a_grid() {
        let t = TracedTensor {
            name: "m".into(),
            shape: vec![2, 2],
            data: vec![1.0, -2.0, 0.5, f32::NEG_INFINITY],
        };
        assert_eq!(t.to_string(), "m [2, 2]\n   1.00000 -2.00000\n   0.50000     -inf\n");
    }
}
