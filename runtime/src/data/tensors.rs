//! [`TensorDataset`]: named tensors of any shape and dtype sharing a leading sample
//! axis, for regression, autoencoders, image-shaped and sequence inputs; batched by
//! [`TensorBatches`] into [`TensorBatch`]es.

use std::ops::Index;

use kiln_ir::{HostTensor, TensorData};

use super::{DataError, Dataset, batch_count, permutation, split_indices};

/// Samples held in memory as named tensors that share their leading (sample) axis:
/// `x` f32 `[N, 1, 8, 8]` and `y` f32 `[N, 3]`, or token ids i32 `[N, T]` and a
/// mask bool `[N, T]`. A batch holds the same names, each tensor cut to the batch's
/// samples along axis 0; the names are meant to be the training step's input names.
///
/// ```
/// use kiln_runtime::data::TensorDataset;
/// use kiln_ir::HostTensor;
///
/// // Four 2x2 single-channel images and a 3-value target each.
/// let images = HostTensor::from_f32([4, 1, 2, 2], (0..16).map(|v| v as f32).collect()).unwrap();
/// let targets = HostTensor::from_f32([4, 3], (0..12).map(|v| v as f32).collect()).unwrap();
/// let data = TensorDataset::new(vec![("x", images), ("y", targets)]).unwrap();
/// assert_eq!(data.len(), 4);
/// let (train, test) = data.split(0.5, 7);
/// assert_eq!((train.len(), test.len()), (2, 2));
/// let batches: Vec<_> = data.batches(3).shuffle(1).drop_last(true).collect();
/// assert_eq!(batches.len(), 1);
/// assert_eq!(batches[0]["x"].shape().dims(), &[3, 1, 2, 2]);
/// assert_eq!(batches[0]["y"].shape().dims(), &[3, 3]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDataset {
    names: Vec<String>,
    tensors: Vec<HostTensor>,
    len: usize,
}

impl TensorDataset {
    /// A data set from `(name, tensor)` pairs. Fails ([`DataError::Invalid`]) when
    /// there are no tensors, a name repeats, a tensor is a scalar (it has no sample
    /// axis), the leading dimensions differ, or there are no samples.
    pub fn new<S: Into<String>>(tensors: Vec<(S, HostTensor)>) -> Result<Self, DataError> {
        let (names, tensors): (Vec<String>, Vec<HostTensor>) =
            tensors.into_iter().map(|(n, t)| (n.into(), t)).unzip();
        if tensors.is_empty() {
            return Err(DataError::Invalid(
                "a tensor data set needs at least one named tensor".into(),
            ));
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(DataError::Invalid(format!(
                    "the name `{name}` is given twice"
                )));
            }
        }
        if let Some(i) = tensors.iter().position(|t| t.shape().rank() == 0) {
            return Err(DataError::Invalid(format!(
                "`{}` is a scalar; every tensor needs a leading sample axis",
                names[i]
            )));
        }
        let len = tensors[0].shape().dim(0);
        if let Some(i) = tensors.iter().position(|t| t.shape().dim(0) != len) {
            return Err(DataError::Invalid(format!(
                "`{}` has {} samples (shape {}) but `{}` has {len} (shape {}): the leading \
                 dimensions must agree",
                names[i],
                tensors[i].shape().dim(0),
                tensors[i].shape(),
                names[0],
                tensors[0].shape()
            )));
        }
        if len == 0 {
            return Err(DataError::Invalid(
                "the tensor data set is empty (leading dimension 0)".into(),
            ));
        }
        Ok(TensorDataset {
            names,
            tensors,
            len,
        })
    }

    /// The number of samples (the shared leading dimension).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no samples ([`TensorDataset::new`] refuses that, but
    /// [`TensorDataset::split`] may make an empty part).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The names, in the order given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The whole tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.tensors[i])
    }

    /// `(name, tensor)` pairs, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &HostTensor)> {
        self.names.iter().map(String::as_str).zip(&self.tensors)
    }

    /// The samples at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> TensorDataset {
        TensorDataset {
            names: self.names.clone(),
            tensors: self
                .tensors
                .iter()
                .map(|t| gather(t, self.len, indices))
                .collect(),
            len: indices.len(),
        }
    }

    /// Member `rank`'s part of the data for data-parallel training over `size`
    /// members, as [`crate::data::Dataset::shard`]: samples `rank`,
    /// `rank + size`, ...
    ///
    /// # Panics
    /// If `rank >= size`.
    pub fn shard(&self, rank: usize, size: usize) -> TensorDataset {
        self.select(&super::shard_indices(self.len, rank, size))
    }

    /// Member `rank`'s part of one epoch of data-parallel training, as
    /// [`crate::data::Dataset::shuffled_shard`].
    ///
    /// # Panics
    /// If `rank >= size`.
    pub fn shuffled_shard(&self, seed: u64, rank: usize, size: usize) -> TensorDataset {
        self.select(&super::shuffled_shard_indices(self.len, seed, rank, size))
    }

    /// The samples in an order determined by `seed`.
    pub fn shuffled(&self, seed: u64) -> TensorDataset {
        self.select(&permutation(self.len, seed))
    }

    /// Shuffles with `seed`, then puts the first `round(train_fraction * len())`
    /// samples in the first set and the rest in the second, as [`Dataset::split`]
    /// does (the same seed picks the same samples). `train_fraction` is clamped to
    /// [0, 1]; a part may be empty.
    pub fn split(&self, train_fraction: f64, seed: u64) -> (TensorDataset, TensorDataset) {
        let (train, test) = split_indices(self.len, train_fraction, seed);
        (self.select(&train), self.select(&test))
    }

    /// Batches of `batch_size` samples, in order, keeping a last partial batch; see
    /// [`TensorBatches::shuffle`] and [`TensorBatches::drop_last`].
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn batches(&self, batch_size: usize) -> TensorBatches<'_> {
        assert!(batch_size > 0, "batch size must be positive");
        TensorBatches {
            data: self,
            order: None,
            batch_size,
            drop_last: false,
            next: 0,
        }
    }

    /// The number of batches [`TensorDataset::batches`] yields.
    pub fn num_batches(&self, batch_size: usize, drop_last: bool) -> usize {
        batch_count(self.len, batch_size, drop_last)
    }
}

/// `x`: the features as f32 `[N, dim]`; `labels`: i32 `[N]`, the names
/// [`crate::data::Batch`] and the classification `Fit` use.
impl From<&Dataset> for TensorDataset {
    fn from(data: &Dataset) -> Self {
        let n = data.len();
        TensorDataset {
            names: vec!["x".into(), "labels".into()],
            tensors: vec![
                HostTensor::from_f32([n, data.dim()], data.features().to_vec())
                    .expect("n rows of dim values"),
                HostTensor::from_i32([n], data.labels().to_vec()).expect("n labels"),
            ],
            len: n,
        }
    }
}

impl From<Dataset> for TensorDataset {
    fn from(data: Dataset) -> Self {
        TensorDataset::from(&data)
    }
}

/// The rows `indices` of `t` (leading dimension `len`) along axis 0.
fn gather(t: &HostTensor, len: usize, indices: &[usize]) -> HostTensor {
    fn rows<T: Copy>(v: &[T], len: usize, indices: &[usize]) -> Vec<T> {
        let row = v.len() / len.max(1);
        let mut out = Vec::with_capacity(row * indices.len());
        for &i in indices {
            assert!(i < len, "sample {i} out of range for {len} samples");
            out.extend_from_slice(&v[i * row..(i + 1) * row]);
        }
        out
    }
    let data = match t.data() {
        TensorData::F32(v) => TensorData::F32(rows(v, len, indices)),
        TensorData::F64(v) => TensorData::F64(rows(v, len, indices)),
        TensorData::I32(v) => TensorData::I32(rows(v, len, indices)),
        TensorData::Bool(v) => TensorData::Bool(rows(v, len, indices)),
    };
    let mut dims = t.shape().dims().to_vec();
    dims[0] = indices.len();
    HostTensor::new(dims, data).expect("whole rows")
}

/// One batch of a [`TensorDataset`]: the same names, each tensor holding the batch's
/// samples along axis 0. Index it by name (`batch["x"]`, which panics on an unknown
/// name) or use [`TensorBatch::get`].
#[derive(Clone, Debug, PartialEq)]
pub struct TensorBatch {
    names: Vec<String>,
    tensors: Vec<HostTensor>,
    len: usize,
}

impl TensorBatch {
    /// The number of samples in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a batch without samples (never yielded by [`TensorBatches`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.tensors[i])
    }

    /// `(name, tensor)` pairs in the data set's order: the argument list of a
    /// training step's `run`, or of a model's `call_args`.
    pub fn inputs(&self) -> Vec<(&str, &HostTensor)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(&self.tensors)
            .collect()
    }
}

impl Index<&str> for TensorBatch {
    type Output = HostTensor;

    fn index(&self, name: &str) -> &HostTensor {
        self.get(name)
            .unwrap_or_else(|| panic!("the batch has no tensor `{name}`"))
    }
}

/// Iterator over the [`TensorBatch`]es of a [`TensorDataset`]; like [`super::Batches`],
/// the last batch may be smaller unless [`TensorBatches::drop_last`] is set.
#[derive(Clone, Debug)]
pub struct TensorBatches<'a> {
    data: &'a TensorDataset,
    order: Option<Vec<usize>>,
    batch_size: usize,
    drop_last: bool,
    next: usize,
}

impl TensorBatches<'_> {
    /// Visits the samples in an order determined by `seed` (use a different seed
    /// each epoch, e.g. `base + epoch`); the same permutation as
    /// [`super::Batches::shuffle`].
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.order = Some(permutation(self.data.len, seed));
        self
    }

    /// Skips a last batch smaller than the batch size.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    fn remaining(&self) -> usize {
        let left = self.data.len - self.next;
        if self.drop_last {
            left / self.batch_size
        } else {
            left.div_ceil(self.batch_size)
        }
    }
}

impl Iterator for TensorBatches<'_> {
    type Item = TensorBatch;

    fn next(&mut self) -> Option<TensorBatch> {
        if self.remaining() == 0 {
            return None;
        }
        let start = self.next;
        let end = (start + self.batch_size).min(self.data.len);
        self.next = end;
        let indices: Vec<usize> = match &self.order {
            Some(o) => o[start..end].to_vec(),
            None => (start..end).collect(),
        };
        Some(TensorBatch {
            names: self.data.names.clone(),
            tensors: self
                .data
                .tensors
                .iter()
                .map(|t| gather(t, self.data.len, &indices))
                .collect(),
            len: indices.len(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for TensorBatches<'_> {}
