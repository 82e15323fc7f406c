//! Speed of decode attention over the cache (no assertions): one token's 8 heads (a thread's
//! share of DeepSeek-V2-Lite's 16 on two threads) against `n` cache rows of MLA's width
//! (`kv_lora_rank + rope = 576` f32), the scores over all 576 columns and the values over the
//! first 512: with the table's `rows_dot` and `rows_axpy` (every row read once for all the
//! heads), and as one `dot` and one `axpy` per head and row (how decode did it before).
//!
//! ```sh
//! cargo bench -p jing-cpu --bench attention_rows
//! JING_TABLE=avx2 cargo bench -p jing-cpu --bench attention_rows
//! ```

mod common;

use common::{time, values};
use std::hint::black_box;
use std::time::Duration;

use jing_cpu::kernels::KernelTable;

fn main() {
    let t = match std::env::var("JING_TABLE") {
        Ok(name) => KernelTable::by_name(&name)
            .unwrap_or_else(|| panic!("JING_TABLE={name}: no such table on this CPU")),
        Err(_) => KernelTable::detect(),
    };
    let (heads, width, kvl) = (8, 576, 512);
    println!(
        "kernel table: {}; {heads} heads, rows of {width} f32, one thread",
        t.name
    );
    println!(
        "{:>7} {:>16} {:>16} {:>8}",
        "rows", "rows_dot+axpy", "dot/axpy each", "ratio"
    );
    for n in [64, 256, 1024, 4096] {
        let (q, kv) = (values(1, heads * width), values(2, n * width));
        let (mut s, mut o) = (vec![0.0f32; heads * n], vec![0.0f32; heads * kvl]);
        let budget = Duration::from_millis(600);
        let rows = time(budget, || {
            (t.rows_dot)(&q, heads, &kv, width, &mut s);
            (t.rows_axpy)(&s, heads, &kv, width, &mut o);
            black_box(&o);
        });
        let each = time(budget, || {
            for (j, row) in kv.chunks_exact(width).enumerate() {
                for h in 0..heads {
                    s[h * n + j] = (t.dot)(&q[h * width..(h + 1) * width], row);
                }
            }
            for (j, row) in kv.chunks_exact(width).enumerate() {
                for h in 0..heads {
                    (t.axpy)(s[h * n + j], &row[..kvl], &mut o[h * kvl..(h + 1) * kvl]);
                }
            }
            black_box(&o);
        });
        println!(
            "{n:>7} {:>11.3} µs/row {:>9.3} µs/row {:>7.2}x",
            rows * 1e6 / n as f64,
            each * 1e6 / n as f64,
            each / rows
        );
    }
}
