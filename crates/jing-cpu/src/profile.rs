//! `JING_PROFILE=1`: where a backend's time went, by op (matmuls by weight type), printed to
//! stderr when the backend is dropped. A node's time runs from when thread 0 starts it to when
//! thread 0 starts the next: the last node of a phase (see [`crate::exec`]) includes the wait
//! for the slowest thread, and a node that thread 0 leaves while another thread still works
//! on it passes the rest of its time to the next. Matmuls also show the rate at which they
//! read their weights. `JING_PROFILE=shapes` splits matmuls by weight shape as well.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use jing_graph::{Graph, Op};

/// Whether `JING_PROFILE` is set (to anything but `0` or empty), read once.
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("JING_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// Whether `JING_PROFILE=shapes`: matmul rows keyed by weight shape too, read once.
fn by_shape() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("JING_PROFILE").is_ok_and(|v| v == "shapes"))
}

/// Per op kind: nodes run, seconds, weight bytes read.
#[derive(Default)]
pub(crate) struct Profile {
    rows: BTreeMap<String, (u64, f64, f64)>,
    steps: u64,
    /// Barriers passed (one per phase), and the seconds the threads spent waiting for one
    /// another, summed over the threads, with the threads' total time (both per run summed).
    barriers: u64,
    waited: f64,
    thread_secs: f64,
}

impl Profile {
    /// Adds a run of `graph` whose node `i` started `starts[i]` seconds into the run, which
    /// ended at `end` seconds.
    pub(crate) fn add(&mut self, graph: &Graph, starts: &[f64], end: f64) {
        self.steps += 1;
        for (i, nd) in graph.nodes.iter().enumerate() {
            let next = starts.get(i + 1).copied().unwrap_or(end);
            let secs = (next - starts[i]).max(0.0);
            let (key, bytes) = match &nd.op {
                Op::MatMul { w, .. } if by_shape() => (
                    format!("matmul {} {:?}", w.dtype, w.shape),
                    w.stored_bytes() as f64,
                ),
                Op::MatMul { w, .. } => (format!("matmul {}", w.dtype), w.stored_bytes() as f64),
                Op::MatMulId { experts, ids, .. } => {
                    // Every selected slot's expert, at most every expert: exact for one token.
                    let slots = graph.node(*ids).numel().min(experts.len());
                    let per = experts.first().map_or(0, |e| e.stored_bytes());
                    (
                        format!(
                            "matmul_id {}",
                            experts.first().map_or("?".into(), |e| e.dtype.to_string())
                        ),
                        (slots * per) as f64,
                    )
                }
                op => (op.name().to_string(), 0.0),
            };
            let row = self.rows.entry(key).or_default();
            row.0 += 1;
            row.1 += secs;
            row.2 += bytes;
        }
    }

    /// A run of `secs` seconds on `threads` threads: its barriers, and the seconds the threads
    /// waited for one another in all.
    pub(crate) fn add_waits(&mut self, barriers: usize, waited: f64, threads: usize, secs: f64) {
        self.barriers += barriers as u64;
        self.waited += waited;
        self.thread_secs += secs * threads as f64;
    }

    /// The table, slowest op first.
    pub(crate) fn report(&self) -> String {
        let total: f64 = self.rows.values().map(|r| r.1).sum();
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
        let mut out = format!(
            "JING_PROFILE: {} graph runs, {:.3} s in nodes\n",
            self.steps, total
        );
        if self.thread_secs > 0.0 {
            out += &format!(
                "threads waited for one another {:.1}% of their time, at {:.0} barriers per run\n",
                100.0 * self.waited / self.thread_secs,
                self.barriers as f64 / self.steps.max(1) as f64
            );
        }
        out += &format!(
            "{:<32} {:>9} {:>10} {:>7} {:>10}\n",
            "op", "nodes", "ms", "share", "weights"
        );
        for (key, &(n, secs, bytes)) in rows {
            let rate = if bytes > 0.0 && secs > 0.0 {
                format!("{:.1} GB/s", bytes / secs / 1e9)
            } else {
                String::new()
            };
            out += &format!(
                "{key:<32} {n:>9} {:>10.1} {:>6.1}% {rate:>10}\n",
                secs * 1e3,
                100.0 * secs / total.max(f64::MIN_POSITIVE)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jing_graph::GraphBuilder;
    use jing_tensor::{Bytes, DType, Weight};
    use std::sync::Arc;

    #[test]
    fn times_and_bytes_are_summed_per_op_kind() {
        let w = Arc::new(
            Weight::new("w", DType::F32, vec![4, 8], Bytes::from_f32(&[0.5; 32])).unwrap(),
        );
        let mut g = GraphBuilder::new(1);
        let x = g.input("x", 8);
        let y = g.matmul(x, &w);
        g.output("y", y);
        let graph = g.finish();
        let starts: Vec<f64> = (0..graph.nodes.len()).map(|i| 0.010 * i as f64).collect();
        let end = 0.010 * graph.nodes.len() as f64;
        let mut p = Profile::default();
        p.add(&graph, &starts, end);
        p.add_waits(3, 0.005, 2, 0.020);
        p.add(&graph, &starts, end);
        p.add_waits(3, 0.003, 2, 0.020);
        let (n, secs, bytes) = p.rows["matmul f32"];
        assert_eq!(n, 2);
        assert!((secs - 0.020).abs() < 1e-9, "{secs}");
        assert_eq!(bytes, 2.0 * 128.0);
        let report = p.report();
        assert!(
            report.contains("matmul f32") && report.contains("2 graph runs"),
            "{report}"
        );
        // 8 ms of waits in 2 runs of 20 ms on 2 threads: a tenth of 80 thread-ms.
        assert!(
            report.contains("waited for one another 10.0% of their time, at 3 barriers per run"),
            "{report}"
        );
    }
}
