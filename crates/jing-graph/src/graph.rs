use crate::{MlaForm, Op};

/// A handle to a node's value inside one [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tensor(pub usize);

/// Element type of a node's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    F32,
    I32,
}

/// One node: an op, the shape and type of its value, and a name for errors and profiles.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub shape: Vec<usize>,
    pub ty: ValueType,
    pub name: String,
}

impl Node {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The computation of one step, in execution order (every input precedes its user), with the
/// named outputs the caller reads back.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub outputs: Vec<(String, Tensor)>,
    /// Number of tokens of the batch the graph was built for.
    pub n_tokens: usize,
}

impl Graph {
    pub fn node(&self, t: Tensor) -> &Node {
        &self.nodes[t.0]
    }

    /// Rewrite every MLA attention to `form` (backend policy; tests use it to run both forms).
    pub fn set_mla_form(&mut self, form: MlaForm) {
        for n in &mut self.nodes {
            if let Op::MlaAttention(a) = &mut n.op {
                a.form = form;
            }
        }
    }

    /// For each node, the index of the last node that reads it (or `usize::MAX` for outputs),
    /// so executors can free intermediates early.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last = Vec::new();
        self.last_uses_into(&mut last);
        last
    }

    /// [`Graph::last_uses`] into `last` (reusing its memory).
    pub fn last_uses_into(&self, last: &mut Vec<usize>) {
        last.clear();
        last.resize(self.nodes.len(), 0);
        for (i, n) in self.nodes.iter().enumerate() {
            for t in n.op.inputs() {
                last[t.0] = i;
            }
        }
        for (_, t) in &self.outputs {
            last[t.0] = usize::MAX;
        }
    }
}

impl Graph {
    /// Check that `batch` fits this graph: its size, token ids against every embedding table,
    /// and the host inputs the graph reads. Every backend calls this before executing.
    pub fn validate_batch(&self, batch: &crate::Batch) -> Result<(), crate::ExecError> {
        use crate::ExecError;
        let n = batch.len();
        if n != self.n_tokens || batch.positions.len() != n || batch.slots.len() != n {
            return Err(ExecError::BatchSize {
                batch: n,
                graph: self.n_tokens,
            });
        }
        for node in &self.nodes {
            match &node.op {
                Op::Embed { table } => {
                    if let Some(&id) = batch.tokens.iter().find(|&&t| t as usize >= table.rows()) {
                        return Err(ExecError::TokenId {
                            id,
                            vocab: table.rows(),
                        });
                    }
                }
                Op::Input { name } => {
                    let v = batch
                        .input(name)
                        .ok_or_else(|| ExecError::MissingInput(name.clone()))?;
                    if v.len() != node.numel() {
                        return Err(ExecError::InputSize {
                            name: name.clone(),
                            found: v.len(),
                            expected: node.numel(),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
