//! [`GgufStreamWriter`]: writes a GGUF file of any size in one pass without holding its tensors.
//!
//! Every tensor's byte size follows from its GGML type and dimensions, so the whole header (with
//! each tensor's offset) is written first; then the data of each tensor, in header order, in as
//! many pieces as the caller likes, each tensor padded to the alignment. The writer checks that
//! every tensor gets exactly its size, so a bug upstream is an error, never a corrupt file.

use std::io::{self, Write};

use super::parse::DEFAULT_ALIGNMENT;
use super::types::{GgmlType, GgufValue};
use super::write::{header_bytes, HeaderTensor};

/// A tensor of a file to be streamed: name, GGML type and dimensions (innermost first, GGUF's
/// `ne`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorSpec {
    pub name: String,
    pub ggml_type: GgmlType,
    pub ne: Vec<u64>,
}

impl GgufTensorSpec {
    /// Bytes of the tensor's data, or `None` when a row (`ne[0]`) is not whole blocks or the
    /// size overflows.
    pub fn byte_size(&self) -> Option<u64> {
        let cols = self.ne.first().copied().unwrap_or(1);
        let rows = self
            .ne
            .iter()
            .skip(1)
            .try_fold(1u64, |a, &d| a.checked_mul(d))?;
        self.ggml_type.row_bytes(cols)?.checked_mul(rows)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Streams a GGUF file (version 3) to `out`: [`new`](GgufStreamWriter::new) writes the header,
/// [`write`](GgufStreamWriter::write) appends data to the current tensor (moving on to the next
/// when one is full), [`finish`](GgufStreamWriter::finish) checks that every tensor was written.
pub struct GgufStreamWriter<W: Write> {
    out: W,
    specs: Vec<GgufTensorSpec>,
    sizes: Vec<u64>,
    align: u64,
    /// The tensor being written (`specs.len()` when all are done).
    current: usize,
    /// Bytes of the current tensor written so far.
    filled: u64,
}

impl<W: Write> GgufStreamWriter<W> {
    /// Write the header of a file with `metadata` (in order; a `general.alignment` u32 entry
    /// sets the alignment, else 32) and `tensors` (in data order). Fails on a tensor whose
    /// rows are not whole blocks of its type, or on an I/O error.
    pub fn new(
        mut out: W,
        metadata: &[(String, GgufValue)],
        tensors: Vec<GgufTensorSpec>,
    ) -> io::Result<GgufStreamWriter<W>> {
        let align = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, GgufValue::U32(a))) if a.is_power_of_two() => *a as u64,
            Some((_, v)) => {
                return Err(invalid(format!(
                    "general.alignment must be a u32 power of two, found {v:?}"
                )))
            }
        };
        let mut sizes = Vec::with_capacity(tensors.len());
        for t in &tensors {
            let size = t.byte_size().ok_or_else(|| {
                invalid(format!(
                    "tensor `{}` of type {} and dimensions {:?}: rows are not whole {}-element blocks",
                    t.name, t.ggml_type, t.ne, t.ggml_type.block_size
                ))
            })?;
            sizes.push(size);
        }
        let infos: Vec<HeaderTensor<'_>> = tensors
            .iter()
            .zip(&sizes)
            .map(|(t, &size)| HeaderTensor {
                name: &t.name,
                type_id: t.ggml_type.id,
                ne: &t.ne,
                size,
            })
            .collect();
        let (header, _offsets) = header_bytes(metadata, &infos, align);
        out.write_all(&header)?;
        let mut w = GgufStreamWriter {
            out,
            specs: tensors,
            sizes,
            align,
            current: 0,
            filled: 0,
        };
        w.skip_empty()?;
        Ok(w)
    }

    /// The tensors, in data order.
    pub fn specs(&self) -> &[GgufTensorSpec] {
        &self.specs
    }

    /// Bytes of tensor `i`'s data.
    pub fn size_of(&self, i: usize) -> u64 {
        self.sizes[i]
    }

    /// Bytes of all tensor data (without padding).
    pub fn data_bytes(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// The index of the tensor the next [`write`](GgufStreamWriter::write) goes to
    /// (`specs().len()` once all are written).
    pub fn current(&self) -> usize {
        self.current
    }

    /// Append `data` to the current tensor; completing a tensor pads it and moves to the next.
    /// Data spanning a tensor boundary is an error (write each tensor's bytes separately).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let Some(&size) = self.sizes.get(self.current) else {
            return Err(invalid(format!(
                "{} bytes written after the last tensor",
                data.len()
            )));
        };
        let left = size - self.filled;
        if data.len() as u64 > left {
            return Err(invalid(format!(
                "tensor `{}` is {size} bytes but {} were written",
                self.specs[self.current].name,
                self.filled + data.len() as u64
            )));
        }
        self.out.write_all(data)?;
        self.filled += data.len() as u64;
        if self.filled == size {
            self.next_tensor()?;
        }
        Ok(())
    }

    fn next_tensor(&mut self) -> io::Result<()> {
        let size = self.sizes[self.current];
        let pad = size.div_ceil(self.align) * self.align - size;
        self.out.write_all(&vec![0u8; pad as usize])?;
        self.current += 1;
        self.filled = 0;
        self.skip_empty()
    }

    /// Zero-size tensors are complete as soon as they are reached.
    fn skip_empty(&mut self) -> io::Result<()> {
        if self.sizes.get(self.current) == Some(&0) {
            return self.next_tensor();
        }
        Ok(())
    }

    /// Check that every tensor was written in full, flush, and return the output.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(t) = self.specs.get(self.current) {
            return Err(invalid(format!(
                "tensor `{}` ({} of {}) has {} of its {} bytes",
                t.name,
                self.current + 1,
                self.specs.len(),
                self.filled,
                self.sizes[self.current]
            )));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgufFile, GgufWriter};
    use jing_tensor::Bytes;
    use std::path::Path;

    fn ty(name: &str) -> GgmlType {
        GgmlType::from_name(name).expect("known type")
    }

    #[test]
    fn same_bytes_as_the_in_memory_writer() {
        let q8: Vec<u8> = (0..2 * 34).map(|i| i as u8).collect();
        let f32s: Vec<f32> = (0..5).map(|i| i as f32 * 0.5).collect();
        let f32_bytes: Vec<u8> = f32s.iter().flat_map(|v| v.to_le_bytes()).collect();
        let metadata = vec![
            (
                "general.architecture".to_string(),
                GgufValue::String("llama".into()),
            ),
            ("general.file_type".to_string(), GgufValue::U32(7)),
        ];
        let mem = GgufWriter::new()
            .kv("general.architecture", metadata[0].1.clone())
            .kv("general.file_type", metadata[1].1.clone())
            .tensor("a", ty("Q8_0"), &[2, 32], q8.clone())
            .tensor("empty", ty("F32"), &[0], Vec::new())
            .f32_tensor("b", &[5], &f32s)
            .to_bytes();
        let specs = vec![
            GgufTensorSpec {
                name: "a".into(),
                ggml_type: ty("Q8_0"),
                ne: vec![32, 2],
            },
            GgufTensorSpec {
                name: "empty".into(),
                ggml_type: ty("F32"),
                ne: vec![0],
            },
            GgufTensorSpec {
                name: "b".into(),
                ggml_type: ty("F32"),
                ne: vec![5],
            },
        ];
        let mut w = GgufStreamWriter::new(Vec::new(), &metadata, specs).unwrap();
        assert_eq!(w.data_bytes(), 68 + 20);
        // Pieces of any size within a tensor.
        w.write(&q8[..10]).unwrap();
        w.write(&q8[10..]).unwrap();
        assert_eq!(w.current(), 2, "the empty tensor is skipped");
        w.write(&f32_bytes).unwrap();
        let streamed = w.finish().unwrap();
        // The same bytes, and (like llama.cpp) the last tensor padded too.
        assert_eq!(&streamed[..mem.len()], &mem[..]);
        assert!(streamed[mem.len()..].iter().all(|&b| b == 0));
        assert_eq!(streamed.len() % 32, 0);
        let f = GgufFile::from_bytes(Path::new("s.gguf"), Bytes::from_vec(streamed)).unwrap();
        assert_eq!(f.weight("b").unwrap().to_f32_vec(), f32s);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let spec = |ne: Vec<u64>| GgufTensorSpec {
            name: "w".into(),
            ggml_type: ty("Q4_K"),
            ne,
        };
        let err = GgufStreamWriter::new(Vec::new(), &[], vec![spec(vec![100, 2])])
            .err()
            .expect("100 is not whole 256-element blocks");
        assert!(
            err.to_string().contains("whole 256-element blocks"),
            "{err}"
        );
        let mut w = GgufStreamWriter::new(Vec::new(), &[], vec![spec(vec![256, 2])]).unwrap();
        assert!(w.write(&[0; 289]).is_err(), "more than the tensor holds");
        w.write(&[0; 100]).unwrap();
        let err = w.finish().expect_err("short tensor");
        assert!(err.to_string().contains("100 of its 288 bytes"), "{err}");
    }
}
