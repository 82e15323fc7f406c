//! A plain read of memory at the best rate this core can stream it: the reference for the
//! roofline of `jing bench` (decode reads each active weight once per token, so it cannot beat
//! this rate). The matmul kernels prefetch ahead in software, and a read loop without it was
//! measured well below them (35 GB/s against 49 with two Zen 5 threads), which put decode at
//! more than 100% of its "roofline".

/// Bytes ahead of the read position that are prefetched.
#[cfg(target_arch = "x86_64")]
const AHEAD: usize = 8192;

/// The wrapping sum of `data` (so that nothing is optimized away), read front to back.
pub fn stream_read(data: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for (i, line) in data.chunks_exact(8).enumerate() {
        // One 64-byte line per step; prefetch the line `AHEAD` bytes on.
        #[cfg(target_arch = "x86_64")]
        {
            let p = data.as_ptr().wrapping_add(i * 8).cast::<u8>();
            super::x86_64::prefetch::prefetch_line(p.wrapping_add(AHEAD));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
        for (a, v) in acc.iter_mut().zip(line) {
            *a = a.wrapping_add(*v);
        }
    }
    let tail = data.chunks_exact(8).remainder();
    acc.iter().chain(tail).fold(0u64, |s, v| s.wrapping_add(*v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_element() {
        let data: Vec<u64> = (0..10_007u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let want = data.iter().fold(0u64, |s, v| s.wrapping_add(*v));
        assert_eq!(stream_read(&data), want);
        assert_eq!(stream_read(&[]), 0);
    }
}
