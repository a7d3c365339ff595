//! The KV cache: every layer's keys and values for the positions seen so far, so that
//! generating one more token costs one position's work, not the whole sequence's.
//!
//! In causal attention a position's key and value depend only on that position and the
//! ones before it. Once computed they never change, so the decoder stores them:
//!
//! ```text
//! keys[layer], values[layer]: [n_head, capacity, d_head]   (positions 0..len filled)
//! memory = 2 (k and v) * n_layer * capacity * n_embd * 4 bytes
//! ```
//!
//! Head-major: one head's keys for every position are contiguous, because that is how
//! attention reads them (one head at a time, every position in order), so a decode step
//! streams memory instead of picking 64 floats out of every 768.
//!
//! The capacity is chosen when the cache is made and never grows, so a decode step
//! allocates nothing for it: [`KvCache::new`] makes room for the whole context (`n_ctx`
//! positions), [`KvCache::with_capacity`] for fewer (a generator makes room for the prompt
//! plus the tokens asked for). The cache is its own type, passed as `&mut` to the forward
//! pass and never stored inside the weights: the same weights can run a cached decoder and
//! a full recomputation side by side, which is how the tests check that the two agree bit
//! for bit.

use crate::error::Result;
use crate::hparams::HParams;

/// The keys and values of one layer: two `[n_head, capacity, d_head]` arrays.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerKv {
    /// Keys, `[n_head, capacity, d_head]`.
    pub keys: Vec<f32>,
    /// Values, `[n_head, capacity, d_head]`.
    pub values: Vec<f32>,
    /// Positions each head has room for.
    pub capacity: usize,
    /// Width of one head, `d_head`.
    pub d_head: usize,
}

impl LayerKv {
    /// Zeroed room for `capacity` positions of `n_embd` values (`[n_head, capacity, d_head]`).
    fn empty(capacity: usize, n_embd: usize, d_head: usize) -> Self {
        let size = capacity * n_embd; // fits: n_ctx * n_embd was validated
        Self { keys: vec![0.0; size], values: vec![0.0; size], capacity, d_head }
    }

    /// Stores the keys and values of positions `pos0..pos0 + n` (`[n, n_embd]` each, the
    /// heads side by side, as attention computes them), each head's row in its own place.
    pub fn store(&mut self, pos0: usize, keys: &[f32], values: &[f32]) {
        let (d, n_embd) = (self.d_head, self.n_embd().max(1));
        debug_assert_eq!(keys.len() % n_embd, 0, "keys must be [n, n_embd]");
        let rows = keys.chunks_exact(n_embd).zip(values.chunks_exact(n_embd));
        for (i, (key, value)) in rows.enumerate() {
            let heads = key.chunks_exact(d).zip(value.chunks_exact(d));
            for (h, (k, v)) in heads.enumerate() {
                let at = (h * self.capacity + pos0 + i) * d;
                self.keys[at..at + d].copy_from_slice(k);
                self.values[at..at + d].copy_from_slice(v);
            }
        }
    }

    /// Width of each stored row, `n_embd = n_head * d_head` (0 for a cache with no room).
    pub fn n_embd(&self) -> usize {
        self.keys.len().checked_div(self.capacity).unwrap_or(0)
    }

    /// Head `h`'s keys for positions `0..n`: `[n, d_head]`.
    pub fn head_keys(&self, h: usize, n: usize) -> &[f32] {
        let at = h * self.capacity * self.d_head;
        &self.keys[at..at + n * self.d_head]
    }

    /// Head `h`'s values for positions `0..n`: `[n, d_head]`.
    pub fn head_values(&self, h: usize, n: usize) -> &[f32] {
        let at = h * self.capacity * self.d_head;
        &self.values[at..at + n * self.d_head]
    }
}

/// Keys and values for every layer, for positions `0..len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    n_embd: usize,
    capacity: usize,
    len: usize,
}

impl KvCache {
    /// An empty cache with room for the model's whole context, `n_ctx` positions. Invalid
    /// hyper-parameters ([`HParams::validate`]) are an error, before anything is allocated.
    pub fn new(hparams: &HParams) -> Result<Self> {
        Self::with_capacity(hparams, hparams.n_ctx)
    }

    /// An empty cache with room for `capacity` positions; a capacity above `n_ctx` is
    /// lowered to `n_ctx`, the most that are ever used. Invalid hyper-parameters are an
    /// error, before anything is allocated.
    pub fn with_capacity(hparams: &HParams, capacity: usize) -> Result<Self> {
        hparams.validate()?;
        let capacity = capacity.min(hparams.n_ctx);
        let layer = LayerKv::empty(capacity, hparams.n_embd, hparams.d_head());
        Ok(Self { layers: vec![layer; hparams.n_layer], n_embd: hparams.n_embd, capacity, len: 0 })
    }

    /// Makes room for `capacity` positions in all (at most `n_ctx` of `hparams`, which must
    /// be the cache's model), keeping every filled position: each head's rows are copied to
    /// the larger arrays. A smaller capacity than the present one changes nothing.
    pub fn grow_to(&mut self, hparams: &HParams, capacity: usize) {
        if capacity.min(hparams.n_ctx) > self.capacity {
            *self = self.copy_with_room(hparams, capacity);
        }
    }

    /// A copy of the filled positions, with room for `capacity` positions in all (at least
    /// the filled ones, at most `n_ctx` of `hparams`, which must be the cache's model):
    /// how several generations start from one prompt's cache.
    pub fn copy_with_room(&self, hparams: &HParams, capacity: usize) -> Self {
        let capacity = capacity.min(hparams.n_ctx).max(self.len);
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                let mut copy = LayerKv::empty(capacity, self.n_embd, layer.d_head);
                for h in 0..self.n_embd.checked_div(layer.d_head).unwrap_or(0) {
                    let (from, to) =
                        (h * layer.capacity * layer.d_head, h * capacity * layer.d_head);
                    let n = self.len * layer.d_head;
                    copy.keys[to..to + n].copy_from_slice(&layer.keys[from..from + n]);
                    copy.values[to..to + n].copy_from_slice(&layer.values[from..from + n]);
                }
                copy
            })
            .collect();
        Self { layers, n_embd: self.n_embd, capacity, len: self.len }
    }

    /// How many positions are filled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is filled yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of layers.
    pub fn n_layer(&self) -> usize {
        self.layers.len()
    }

    /// The filled keys of one head of `layer`: `[len, d_head]`.
    ///
    /// # Panics
    /// If `layer >= n_layer` or `head >= n_head`, as indexing out of bounds does.
    pub fn keys(&self, layer: usize, head: usize) -> &[f32] {
        assert!(head < self.n_head(), "head {head} of a cache with {} heads", self.n_head());
        self.layers[layer].head_keys(head, self.len)
    }

    /// The filled values of one head of `layer`: `[len, d_head]`.
    ///
    /// # Panics
    /// If `layer >= n_layer` or `head >= n_head`, as indexing out of bounds does.
    pub fn values(&self, layer: usize, head: usize) -> &[f32] {
        assert!(head < self.n_head(), "head {head} of a cache with {} heads", self.n_head());
        self.layers[layer].head_values(head, self.len)
    }

    /// Heads per layer.
    pub fn n_head(&self) -> usize {
        self.n_embd / self.layers.first().map_or(1, |l| l.d_head.max(1))
    }

    /// Width of each stored key and value row, `n_embd`.
    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    /// Bytes held by the keys and values: `2 * n_layer * capacity * n_embd * 4`.
    pub fn memory_bytes(&self) -> usize {
        2 * self.layers.len() * self.capacity * self.n_embd * std::mem::size_of::<f32>()
    }

    /// Empties the cache (keeps its memory) so a new sequence can start.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `len` positions and forgets the rest (keeps the memory): the cache
    /// then holds what it held after `len` tokens, so decoding can go back to that point and
    /// take another path. A `len` at or beyond [`len`](Self::len) changes nothing.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The storage of one layer, for the forward pass to write new positions into.
    pub(crate) fn layer_mut(&mut self, layer: usize) -> &mut LayerKv {
        &mut self.layers[layer]
    }

    /// Marks `n_new` more positions as filled, once every layer has written them.
    pub(crate) fn advance(&mut self, n_new: usize) {
        debug_assert!(self.len + n_new <= self.capacity);
        self.len += n_new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_matches_the_formula() {
        let hparams = HParams::dummy();
        let cache = KvCache::new(&hparams).unwrap();
        // 2 * n_layer 2 * n_ctx 1024 * n_embd 10 * 4 bytes = 163_840
        assert_eq!(cache.memory_bytes(), 163_840);
        assert_eq!((cache.len(), cache.capacity()), (0, 1024));
        assert!(cache.keys(1, 1).is_empty());
        assert_eq!(cache.n_head(), 2);
    }

    #[test]
    fn bad_sizes_are_errors_and_a_huge_capacity_is_n_ctx() {
        let hparams = HParams { n_head: 0, ..HParams::dummy() };
        assert!(
            KvCache::new(&hparams).unwrap_err().to_string().contains("n_head must be at least 1")
        );
        let cache = KvCache::with_capacity(&HParams::dummy(), usize::MAX).unwrap();
        assert_eq!(cache.capacity(), 1024);
    }

    #[test]
    fn growing_keeps_every_filled_position() {
        let hparams = HParams::dummy(); // 2 layers, 2 heads of 5
        let mut cache = KvCache::with_capacity(&hparams, 3).unwrap();
        for layer in 0..2 {
            let rows: Vec<f32> = (0..30).map(|i| (layer * 100 + i) as f32).collect(); // [3, 10]
            cache.layer_mut(layer).store(0, &rows, &rows.iter().map(|x| -x).collect::<Vec<_>>());
        }
        cache.advance(3);
        let before = cache.clone();
        cache.grow_to(&hparams, 7);
        assert_eq!(cache.capacity(), 7);
        for (layer, head) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            assert_eq!(cache.keys(layer, head), before.keys(layer, head));
            assert_eq!(cache.values(layer, head), before.values(layer, head));
        }
        assert_eq!(cache.keys(1, 1)[..5], [105.0, 106.0, 107.0, 108.0, 109.0]);
        let copy = cache.copy_with_room(&hparams, 2); // never below the filled positions
        assert_eq!((copy.capacity(), copy.len()), (3, 3));
        assert_eq!(copy.keys(1, 1), cache.keys(1, 1));
    }
}
