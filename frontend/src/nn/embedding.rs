//! [`Embedding`]: a lookup table of learned vectors, PyTorch's `nn.Embedding`.

use kiln_ir::{DType, HostTensor, TensorType, TypeError};

use super::Module;
use crate::ctx::{Ctx, enter};
use crate::init::Init;
use crate::rng::Rng;
use crate::{GraphBuilder, Tensor};

/// A table of `num_embeddings` vectors of size `embedding_dim`, looked up by i32
/// ids: `forward(ids: i32[...])` is `[..., embedding_dim]`. The parameter is
/// `{name}.weight: [num_embeddings, embedding_dim]`, drawn from `N(0, 1)` as in
/// PyTorch.
///
/// With a `padding_idx`, that row starts at zero and receives no gradient, so it
/// stays what it is through training (PyTorch's `padding_idx`); looking it up
/// returns the row's current value.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("tokens");
/// let mut rng = Rng::seed(0);
/// let embed = nn::EmbeddingConfig::new(100, 16)
///     .with_padding_idx(0)
///     .init(&g, "embed", &mut rng);
/// let ids = g.input("ids", DType::I32, [7, 4]);
/// let vectors = embed.forward(&ids);
/// assert_eq!(vectors.dims(), &[7, 4, 16]);
/// let model = g.build(&[&vectors]).unwrap();
/// let weight = model.params.get("embed.weight").unwrap().to_f64_vec();
/// assert!(weight[..16].iter().all(|&x| x == 0.0)); // the padding row
/// ```
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Tensor,
    /// The row that gets no gradient, if any.
    pub padding_idx: Option<usize>,
}

/// The configuration of an [`Embedding`], builder-style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmbeddingConfig {
    /// The number of rows (the vocabulary size).
    pub num_embeddings: usize,
    /// The size of each vector.
    pub embedding_dim: usize,
    /// The row initialized to zero that receives no gradient (default none).
    pub padding_idx: Option<usize>,
    /// The initializer (default `N(0, 1)`, PyTorch's).
    pub init: Init,
    /// The dtype of the table (default f32; f64 for gradient checks).
    pub dtype: DType,
}

impl EmbeddingConfig {
    /// A table of `num_embeddings` rows of size `embedding_dim`, drawn from
    /// `N(0, 1)`, in f32, without a padding row.
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> Self {
        EmbeddingConfig {
            num_embeddings,
            embedding_dim,
            padding_idx: None,
            init: Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
            dtype: DType::F32,
        }
    }

    /// With a padding row: zero at first, and never updated by gradients.
    pub fn with_padding_idx(mut self, padding_idx: usize) -> Self {
        self.padding_idx = Some(padding_idx);
        self
    }

    setters! {
        /// With another initializer.
        with_init(init: Init) => init;
        /// With another (float) dtype for the table.
        with_dtype(dtype: DType) => dtype;
    }

    /// Declares the parameter `{name}.weight` in `g`. A `padding_idx` outside the
    /// table or a non-float dtype is recorded as an error of `embedding`.
    #[track_caller]
    pub fn init(&self, g: &GraphBuilder, name: &str, rng: &mut Rng) -> Embedding {
        let dims = [self.num_embeddings, self.embedding_dim];
        let ty = TensorType::new(self.dtype, dims);
        let cx = Ctx::leaf(g, "embedding", ty.clone());
        let poisoned = |kind: TypeError| Embedding {
            weight: cx.fail(kind),
            padding_idx: self.padding_idx,
        };
        if !self.dtype.is_float() {
            return poisoned(TypeError::DType {
                index: 0,
                got: ty,
                expected: "an embedding table must have a float dtype".into(),
            });
        }
        if let Some(p) = self.padding_idx.filter(|&p| p >= self.num_embeddings) {
            return poisoned(TypeError::Attr(format!(
                "padding_idx {p} is outside a table of {} rows",
                self.num_embeddings
            )));
        }
        let mut value = self.init.sample(dims, rng).cast(self.dtype);
        if let Some(p) = self.padding_idx {
            let mut data = value.to_f64_vec();
            let row = p * self.embedding_dim..(p + 1) * self.embedding_dim;
            data[row].iter_mut().for_each(|x| *x = 0.0);
            value = HostTensor::from_fn(&ty, |i| data[i]);
        }
        Embedding {
            weight: g.param(&format!("{name}.weight"), value),
            padding_idx: self.padding_idx,
        }
    }
}

impl Embedding {
    /// A table with PyTorch's defaults (`N(0, 1)`, f32, no padding row); see
    /// [`EmbeddingConfig`] for the options.
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        num_embeddings: usize,
        embedding_dim: usize,
        rng: &mut Rng,
    ) -> Embedding {
        EmbeddingConfig::new(num_embeddings, embedding_dim).init(g, name, rng)
    }
}

impl Module for Embedding {
    /// The rows of the table at `ids: i32[...]`: `[..., embedding_dim]`. An id out
    /// of the table is an error when the graph runs. Rows looked up at
    /// `padding_idx` pass no gradient back to the table.
    #[track_caller]
    fn forward(&self, ids: &Tensor) -> Tensor {
        let mut dims = ids.dims().to_vec();
        dims.extend(self.weight.dims().get(1).copied());
        let cx = enter!("embedding", &self.weight, ids; TensorType::new(self.weight.dtype(), dims));
        if let Err(p) = cx.check(|t| {
            if t[1].dtype != DType::I32 {
                return Err(TypeError::DType {
                    index: 1,
                    got: t[1].clone(),
                    expected: "ids must be i32".into(),
                });
            }
            Ok(())
        }) {
            return p;
        }
        let rows = self.weight.gather(ids);
        match self.padding_idx {
            // Same values; the gradient of padding lookups is stopped.
            Some(p) => ids
                .ne(p as i32)
                .unsqueeze(-1)
                .where_cond(&rows, &rows.detach()),
            None => rows,
        }
    }

    fn params(&self) -> Vec<Tensor> {
        vec![self.weight.clone()]
    }
}
