use std::sync::Arc;

use jing_tensor::Weight;

use crate::{
    GqaAttention, Graph, GroupScore, MlaAttention, MlaForm, MlaWeights, Node, Op, RopeFreqs,
    Tensor, ValueType,
};

/// Builds a [`Graph`] op by op, inferring and checking shapes as the model is written.
/// A shape mismatch here is a bug in model code (checkpoint shapes are validated when the
/// weights are loaded), so it panics with both shapes named.
pub struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    /// Start a graph for a batch of `n_tokens` tokens.
    pub fn new(n_tokens: usize) -> GraphBuilder {
        GraphBuilder {
            graph: Graph {
                n_tokens,
                ..Graph::default()
            },
        }
    }

    pub fn n_tokens(&self) -> usize {
        self.graph.n_tokens
    }

    pub fn shape(&self, t: Tensor) -> &[usize] {
        &self.graph.nodes[t.0].shape
    }

    fn push(&mut self, op: Op, shape: Vec<usize>, ty: ValueType) -> Tensor {
        let name = op.name().to_string();
        self.graph.nodes.push(Node {
            op,
            shape,
            ty,
            name,
        });
        Tensor(self.graph.nodes.len() - 1)
    }

    fn f32(&mut self, op: Op, shape: Vec<usize>) -> Tensor {
        self.push(op, shape, ValueType::F32)
    }

    /// Give the most recent meaning to a node: `name` shows in errors and profiles.
    pub fn name(&mut self, t: Tensor, name: impl Into<String>) -> Tensor {
        self.graph.nodes[t.0].name = name.into();
        t
    }

    /// Mark `t` as an output called `name`.
    pub fn output(&mut self, name: impl Into<String>, t: Tensor) {
        self.graph.outputs.push((name.into(), t));
    }

    pub fn finish(self) -> Graph {
        self.graph
    }

    fn last_dim(&self, t: Tensor) -> usize {
        *self.shape(t).last().expect("tensor has a dimension")
    }

    /// Token embeddings: `[T, D]`.
    pub fn embed(&mut self, table: &Arc<Weight>) -> Tensor {
        let d = table.cols();
        let t = self.n_tokens();
        self.f32(
            Op::Embed {
                table: table.clone(),
            },
            vec![t, d],
        )
    }

    /// A host input `[T, width]`.
    pub fn input(&mut self, name: &str, width: usize) -> Tensor {
        let t = self.n_tokens();
        self.f32(
            Op::Input {
                name: name.to_string(),
            },
            vec![t, width],
        )
    }

    /// `x [.., K] · Wᵀ`, `W [N, K]`: `[.., N]`.
    pub fn matmul(&mut self, x: Tensor, w: &Arc<Weight>) -> Tensor {
        let k = self.last_dim(x);
        assert_eq!(
            k,
            w.cols(),
            "matmul: x {:?} does not match weight `{}` {:?}",
            self.shape(x),
            w.name,
            w.shape
        );
        let mut shape = self.shape(x).to_vec();
        *shape.last_mut().expect("non-empty") = w.rows();
        self.f32(Op::MatMul { x, w: w.clone() }, shape)
    }

    pub fn rms_norm(&mut self, x: Tensor, w: &Arc<Weight>, eps: f32) -> Tensor {
        assert_eq!(
            self.last_dim(x),
            w.numel(),
            "rms_norm: x {:?} vs weight `{}` {:?}",
            self.shape(x),
            w.name,
            w.shape
        );
        let shape = self.shape(x).to_vec();
        self.f32(
            Op::RmsNorm {
                x,
                w: w.clone(),
                eps,
            },
            shape,
        )
    }

    fn same_shape(&self, op: &str, a: Tensor, b: Tensor) -> Vec<usize> {
        assert_eq!(self.shape(a), self.shape(b), "{op}: shapes differ");
        self.shape(a).to_vec()
    }

    pub fn add(&mut self, a: Tensor, b: Tensor) -> Tensor {
        let shape = self.same_shape("add", a, b);
        self.f32(Op::Add { a, b }, shape)
    }

    /// `x [.., N] + bias [N]`.
    pub fn add_bias(&mut self, x: Tensor, bias: &Arc<Weight>) -> Tensor {
        assert_eq!(
            self.last_dim(x),
            bias.numel(),
            "add_bias: x {:?} vs bias `{}` {:?}",
            self.shape(x),
            bias.name,
            bias.shape
        );
        let shape = self.shape(x).to_vec();
        self.f32(
            Op::AddBias {
                x,
                bias: bias.clone(),
            },
            shape,
        )
    }

    pub fn mul(&mut self, a: Tensor, b: Tensor) -> Tensor {
        let shape = self.same_shape("mul", a, b);
        self.f32(Op::Mul { a, b }, shape)
    }

    pub fn scale(&mut self, x: Tensor, s: f32) -> Tensor {
        let shape = self.shape(x).to_vec();
        self.f32(Op::Scale { x, s }, shape)
    }

    pub fn silu_mul(&mut self, gate: Tensor, up: Tensor) -> Tensor {
        let shape = self.same_shape("silu_mul", gate, up);
        self.f32(Op::SiluMul { gate, up }, shape)
    }

    pub fn sigmoid(&mut self, x: Tensor) -> Tensor {
        let shape = self.shape(x).to_vec();
        self.f32(Op::Sigmoid { x }, shape)
    }

    pub fn softmax(&mut self, x: Tensor) -> Tensor {
        let shape = self.shape(x).to_vec();
        self.f32(Op::Softmax { x }, shape)
    }

    /// Columns `start .. start + len` of the last dimension.
    pub fn slice(&mut self, x: Tensor, start: usize, len: usize) -> Tensor {
        assert!(
            start + len <= self.last_dim(x),
            "slice {start}..{} of {:?}",
            start + len,
            self.shape(x)
        );
        let mut shape = self.shape(x).to_vec();
        *shape.last_mut().expect("non-empty") = len;
        self.f32(Op::Slice { x, start, len }, shape)
    }

    pub fn concat(&mut self, a: Tensor, b: Tensor) -> Tensor {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        assert_eq!(
            sa[..sa.len() - 1],
            sb[..sb.len() - 1],
            "concat: {sa:?} and {sb:?}"
        );
        let mut shape = sa.clone();
        *shape.last_mut().expect("non-empty") += sb[sb.len() - 1];
        self.f32(Op::Concat { a, b }, shape)
    }

    pub fn reshape(&mut self, x: Tensor, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            self.shape(x).iter().product::<usize>(),
            "reshape {:?} to {shape:?}",
            self.shape(x)
        );
        let ty = self.graph.nodes[x.0].ty;
        self.push(Op::Reshape { x }, shape.to_vec(), ty)
    }

    /// Rotate `x [T, H, D]` (D = the rotary width) by each token's position.
    pub fn rope(&mut self, x: Tensor, freqs: &Arc<RopeFreqs>) -> Tensor {
        let shape = self.shape(x).to_vec();
        assert!(
            shape.len() == 3 && shape[2] == freqs.dim(),
            "rope: x {shape:?} vs rotary width {}",
            freqs.dim()
        );
        self.f32(
            Op::Rope {
                x,
                freqs: freqs.clone(),
            },
            shape,
        )
    }

    pub fn take_rows(&mut self, x: Tensor, rows: Vec<usize>) -> Tensor {
        let mut shape = self.shape(x).to_vec();
        assert!(rows.iter().all(|&r| r < shape[0]), "take_rows out of range");
        shape[0] = rows.len();
        let ty = self.graph.nodes[x.0].ty;
        self.push(Op::TakeRows { x, rows }, shape, ty)
    }

    /// Router expert choice `[T, top_k]` (see [`Op::MoeSelect`]).
    pub fn moe_select(
        &mut self,
        scores: Tensor,
        bias: Option<&Arc<Weight>>,
        top_k: usize,
        n_group: usize,
        topk_group: usize,
        group_score: GroupScore,
    ) -> Tensor {
        let e = self.last_dim(scores);
        assert!(top_k <= e && n_group >= 1 && e.is_multiple_of(n_group) && topk_group <= n_group);
        if let Some(b) = bias {
            assert_eq!(b.numel(), e, "router bias `{}`", b.name);
        }
        let t = self.shape(scores)[0];
        self.push(
            Op::MoeSelect {
                scores,
                bias: bias.cloned(),
                top_k,
                n_group,
                topk_group,
                group_score,
            },
            vec![t, top_k],
            ValueType::I32,
        )
    }

    pub fn gather_cols(&mut self, x: Tensor, ids: Tensor) -> Tensor {
        let shape = self.shape(ids).to_vec();
        assert_eq!(self.shape(x)[0], shape[0]);
        self.f32(Op::GatherCols { x, ids }, shape)
    }

    pub fn normalize_rows(&mut self, x: Tensor) -> Tensor {
        let shape = self.shape(x).to_vec();
        self.f32(Op::NormalizeRows { x }, shape)
    }

    /// Per-token expert matmul `[T, k, N]` (see [`Op::MatMulId`]).
    pub fn matmul_id(&mut self, x: Tensor, experts: &Arc<Vec<Arc<Weight>>>, ids: Tensor) -> Tensor {
        let (t, k) = (self.shape(ids)[0], self.shape(ids)[1]);
        let xs = self.shape(x).to_vec();
        assert!(
            xs.len() == 2 || (xs.len() == 3 && xs[1] == k),
            "matmul_id: x {xs:?} with ids [{t}, {k}]"
        );
        let first = &experts[0];
        assert!(
            experts.iter().all(|w| w.shape == first.shape),
            "matmul_id: experts differ in shape"
        );
        assert_eq!(
            xs[xs.len() - 1],
            first.cols(),
            "matmul_id: x {xs:?} vs `{}`",
            first.name
        );
        self.f32(
            Op::MatMulId {
                x,
                experts: experts.clone(),
                ids,
            },
            vec![t, k, first.rows()],
        )
    }

    pub fn weighted_sum(&mut self, x: Tensor, w: Tensor) -> Tensor {
        let xs = self.shape(x).to_vec();
        assert_eq!(&xs[..2], self.shape(w), "weighted_sum: x {xs:?}");
        self.f32(Op::WeightedSum { x, w }, vec![xs[0], xs[2]])
    }

    /// Store the step's latent rows in the cache of `layer`.
    pub fn kv_write(&mut self, layer: usize, c_kv: Tensor, k_pe: Tensor) -> Tensor {
        let t = self.shape(c_kv)[0];
        let width = self.last_dim(c_kv) + self.last_dim(k_pe);
        self.f32(
            Op::KvWrite {
                layer,
                left: c_kv,
                right: k_pe,
            },
            vec![t, width],
        )
    }

    /// MLA attention over the latent cache (see [`MlaAttention`]): `[T, H·dv]`.
    #[allow(clippy::too_many_arguments)]
    pub fn mla_attention(
        &mut self,
        q_nope: Tensor,
        q_pe: Tensor,
        written: Tensor,
        w: &Arc<MlaWeights>,
        layer: usize,
        scale: f32,
    ) -> Tensor {
        let (qn, qp) = (self.shape(q_nope).to_vec(), self.shape(q_pe).to_vec());
        assert!(
            qn.len() == 3 && qp.len() == 3 && qn[..2] == qp[..2],
            "mla: q {qn:?} {qp:?}"
        );
        let (t, h, dn, dr) = (qn[0], qn[1], qn[2], qp[2]);
        let (kv_lora, v_dim) = (w.kv_lora, w.v_dim);
        assert!(
            w.n_heads() == h && w.nope_dim == dn,
            "mla: weights for {} heads of nope {}, q_nope {qn:?}",
            w.n_heads(),
            w.nope_dim
        );
        assert_eq!(self.last_dim(written), kv_lora + dr, "mla: cache row width");
        self.f32(
            Op::MlaAttention(Box::new(MlaAttention {
                q_nope,
                q_pe,
                written,
                w: w.clone(),
                layer,
                n_heads: h,
                nope_dim: dn,
                rope_dim: dr,
                v_dim,
                kv_lora,
                scale,
                form: MlaForm::Auto,
            })),
            vec![t, h * v_dim],
        )
    }

    /// Grouped-query attention of `q [T, H, d]` over the cache of `layer` (see
    /// [`GqaAttention`]): `[T, H·d]`.
    pub fn gqa_attention(
        &mut self,
        q: Tensor,
        written: Tensor,
        layer: usize,
        n_kv_heads: usize,
        scale: f32,
    ) -> Tensor {
        let qs = self.shape(q).to_vec();
        assert_eq!(qs.len(), 3, "attention: q {qs:?}");
        let (t, h, d) = (qs[0], qs[1], qs[2]);
        assert!(
            n_kv_heads >= 1 && h % n_kv_heads == 0,
            "attention: {h} heads over {n_kv_heads} kv heads"
        );
        assert_eq!(
            self.last_dim(written),
            2 * n_kv_heads * d,
            "attention: cache row width"
        );
        self.f32(
            Op::Attention(Box::new(GqaAttention {
                q,
                written,
                layer,
                n_heads: h,
                n_kv_heads,
                head_dim: d,
                scale,
            })),
            vec![t, h * d],
        )
    }
}
