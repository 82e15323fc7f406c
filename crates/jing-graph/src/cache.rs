/// The key/value cache: for every sequence slot, layer and position, one row. For MLA the row
/// is the normalised latent `c_kv` followed by the rotated shared `k_pe` (576 floats per token
/// and layer for DeepSeek-V3), never per-head keys or values; for grouped-query attention it is
/// the keys then the values of the KV heads.
#[derive(Debug)]
pub struct KvCache {
    n_layers: usize,
    width: usize,
    max_len: usize,
    /// `slots[s][layer]` holds `len(s) · width` floats.
    slots: Vec<Option<Vec<Vec<f32>>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("position {pos} is past the context limit of {max_len} tokens")]
    TooLong { pos: usize, max_len: usize },
    #[error("cache slot {0} is not allocated")]
    NoSlot(usize),
    #[error("position {pos} written before position {len} of slot {slot} (layer {layer})")]
    Gap {
        slot: usize,
        layer: usize,
        pos: usize,
        len: usize,
    },
}

impl KvCache {
    /// A cache for `n_layers` layers of `width`-wide rows and at most `max_len` positions.
    pub fn new(n_layers: usize, width: usize, max_len: usize) -> KvCache {
        KvCache {
            n_layers,
            width,
            max_len,
            slots: Vec::new(),
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn n_layers(&self) -> usize {
        self.n_layers
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Take a free slot for a new sequence.
    pub fn alloc_slot(&mut self) -> usize {
        let fresh = Some(vec![Vec::new(); self.n_layers]);
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = fresh;
                i
            }
            None => {
                self.slots.push(fresh);
                self.slots.len() - 1
            }
        }
    }

    pub fn free_slot(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = None;
        }
    }

    /// A new slot holding a copy of positions `0..len` of `src` (a shared prompt prefix).
    pub fn fork(&mut self, src: usize, len: usize) -> Result<usize, CacheError> {
        let width = self.width;
        let copied: Vec<Vec<f32>> = {
            let layers = self
                .slots
                .get(src)
                .and_then(Option::as_ref)
                .ok_or(CacheError::NoSlot(src))?;
            let mut copied = Vec::with_capacity(layers.len());
            for (layer, rows) in layers.iter().enumerate() {
                if rows.len() < len * width {
                    return Err(CacheError::Gap {
                        slot: src,
                        layer,
                        pos: len.saturating_sub(1),
                        len: rows.len() / width,
                    });
                }
                copied.push(rows[..len * width].to_vec());
            }
            copied
        };
        let slot = self.alloc_slot();
        self.slots[slot] = Some(copied);
        Ok(slot)
    }

    /// Positions stored for `slot` (in its first layer: every step writes the main layers in
    /// order, while layers kept for extra modules such as MTP may hold fewer).
    pub fn slot_len(&self, slot: usize) -> usize {
        self.len(slot, 0)
    }

    /// Forget positions `len..` of `slot` (e.g. after a rejected speculative draft).
    pub fn truncate(&mut self, slot: usize, len: usize) {
        if let Some(Some(layers)) = self.slots.get_mut(slot) {
            for l in layers {
                l.truncate(len * self.width);
            }
        }
    }

    /// Number of positions stored for `slot` in `layer`.
    pub fn len(&self, slot: usize, layer: usize) -> usize {
        match self.slots.get(slot) {
            Some(Some(layers)) => layers[layer].len() / self.width,
            _ => 0,
        }
    }

    /// Store `row` at `pos`; positions must be written in order (a rewrite of an existing
    /// position replaces it).
    pub fn write(
        &mut self,
        slot: usize,
        layer: usize,
        pos: usize,
        row: &[f32],
    ) -> Result<(), CacheError> {
        debug_assert_eq!(row.len(), self.width);
        if pos >= self.max_len {
            return Err(CacheError::TooLong {
                pos,
                max_len: self.max_len,
            });
        }
        let width = self.width;
        let layers = self
            .slots
            .get_mut(slot)
            .and_then(Option::as_mut)
            .ok_or(CacheError::NoSlot(slot))?;
        let rows = &mut layers[layer];
        let len = rows.len() / width;
        if pos > len {
            return Err(CacheError::Gap {
                slot,
                layer,
                pos,
                len,
            });
        }
        if pos == len {
            rows.extend_from_slice(row);
        } else {
            rows[pos * width..(pos + 1) * width].copy_from_slice(row);
        }
        Ok(())
    }

    /// Rows `0..n` of `slot`, `layer`: `[n, width]`.
    pub fn rows(&self, slot: usize, layer: usize, n: usize) -> Result<&[f32], CacheError> {
        let layers = self
            .slots
            .get(slot)
            .and_then(Option::as_ref)
            .ok_or(CacheError::NoSlot(slot))?;
        let rows = &layers[layer];
        if n * self.width > rows.len() {
            return Err(CacheError::Gap {
                slot,
                layer,
                pos: n - 1,
                len: rows.len() / self.width,
            });
        }
        Ok(&rows[..n * self.width])
    }
}
