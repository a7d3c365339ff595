//! The KV cache: every layer's keys and values for the positions seen so far, so that
//! generating one more token costs one position's work, not the whole sequence's.
//!
//! In causal attention a position's key and value depend only on that position and the
//! ones before it. Once computed they never change, so the decoder stores them:
//!
//! ```text
//! keys[layer], values[layer]: [n_ctx, n_embd]   (rows 0..len filled; heads side by side,
//!                                                head h in columns h*d_head..(h+1)*d_head)
//! memory = 2 (k and v) * n_layer * n_ctx * n_embd * 4 bytes
//! ```
//!
//! The cache is allocated once for its full capacity and never grows, so a decode step
//! allocates nothing for it. It is its own type, passed as `&mut` to the forward pass and
//! never stored inside the weights: the same weights can run a cached decoder and a full
//! recomputation side by side, which is how the tests check that the two agree bit for bit.

use crate::model::HParams;

/// The keys and values of one layer: two `[capacity, n_embd]` matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerKv {
    /// Keys, `[capacity, n_embd]`.
    pub keys: Vec<f32>,
    /// Values, `[capacity, n_embd]`.
    pub values: Vec<f32>,
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
        let size = capacity * hparams.n_embd; // [capacity, n_embd]
        let layer = LayerKv {
            keys: vec![0.0; size],
            values: vec![0.0; size],
        };
        Self {
            layers: vec![layer; hparams.n_layer],
            n_embd: hparams.n_embd,
            capacity,
            len: 0,
        }
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

    /// The filled keys of `layer`: `[len, n_embd]`.
    pub fn keys(&self, layer: usize) -> &[f32] {
        &self.layers[layer].keys[..self.len * self.n_embd]
    }

    /// The filled values of `layer`: `[len, n_embd]`.
    pub fn values(&self, layer: usize) -> &[f32] {
        &self.layers[layer].values[..self.len * self.n_embd]
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
        assert!(cache.keys(1).is_empty());
    }
}
