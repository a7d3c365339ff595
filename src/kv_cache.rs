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
    /// An empty cache with room for the model's whole context, `n_ctx` positions.
    pub fn new(hparams: &HParams) -> Self {
        Self::with_capacity(hparams, hparams.n_ctx)
    }

    /// An empty cache with room for `capacity` positions (at most `n_ctx` are ever used).
    pub fn with_capacity(hparams: &HParams, capacity: usize) -> Self {
        let size = capacity * hparams.n_embd; // [n_head, capacity, d_head]
        let layer = LayerKv {
            keys: vec![0.0; size],
            values: vec![0.0; size],
            capacity,
            d_head: hparams.d_head(),
        };
        Self { layers: vec![layer; hparams.n_layer], n_embd: hparams.n_embd, capacity, len: 0 }
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
    pub fn keys(&self, layer: usize, head: usize) -> &[f32] {
        self.layers[layer].head_keys(head, self.len)
    }

    /// The filled values of one head of `layer`: `[len, d_head]`.
    pub fn values(&self, layer: usize, head: usize) -> &[f32] {
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
        let cache = KvCache::new(&hparams);
        // 2 * n_layer 2 * n_ctx 1024 * n_embd 10 * 4 bytes = 163_840
        assert_eq!(cache.memory_bytes(), 163_840);
        assert_eq!((cache.len(), cache.capacity()), (0, 1024));
        assert!(cache.keys(1, 1).is_empty());
        assert_eq!(cache.n_head(), 2);
    }
}
