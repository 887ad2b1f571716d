//! Data for training: an in-memory [`Dataset`] of feature rows and integer labels,
//! seeded shuffling, train/test splits, a [`Batches`] iterator, and readers for CSV
//! ([`read_csv`]) and IDX ([`read_idx`], the format MNIST ships in); tagged
//! sentences for sequence models ([`read_tagged`], [`Vocab`], [`sequence_batches`]);
//! named tensors of any shape and dtype for any other task ([`TensorDataset`]).
//!
//! ```
//! use kiln_runtime::data::Dataset;
//!
//! // Six samples with two features each, labels 0 or 1.
//! let features: Vec<f32> = (0..12).map(|v| v as f32).collect();
//! let data = Dataset::new(features, vec![0, 1, 0, 1, 0, 1], 2).unwrap();
//! let (train, test) = data.split(0.5, 7);
//! assert_eq!((train.len(), test.len()), (3, 3));
//! // Batches of 2 with the last, partial one dropped: a compiled training step is
//! // specialized to its batch size.
//! let batches: Vec<_> = train.batches(2).shuffle(1).drop_last(true).collect();
//! assert_eq!(batches.len(), 1);
//! assert_eq!(batches[0].x.shape().dims(), &[2, 2]);
//! assert_eq!(batches[0].labels.shape().dims(), &[2]);
//! ```

mod csv;
mod idx;
mod tagged;
mod tensors;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use kiln_ir::HostTensor;

pub use csv::{CsvOptions, Header, LabelColumn, read_csv};
pub use idx::{IdxArray, IdxData, read_idx, read_idx_dataset};
pub use tagged::{
    MAX_TAGGED_BYTES, SequenceBatch, TaggedCorpus, TaggedSentence, Vocab, read_tagged,
    sequence_batches,
};
pub use tensors::{TensorBatch, TensorBatches, TensorDataset};

/// Why data could not be read or assembled. File errors name the file, and the line
/// (text) or byte offset (binary) where reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{}: not a valid gzip stream: {message}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },
    /// A malformed line of a text file.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// A malformed binary file.
    #[error("{} at byte {offset}: {message}", path.display())]
    Binary {
        /// The file.
        path: PathBuf,
        /// Offset of the offending byte (of the decompressed data for gzip files).
        offset: u64,
        /// What was expected and what was found.
        message: String,
    },
    /// The file is well formed but does not make a data set (no rows, labels that
    /// are not class indices, images and labels of different counts, ...).
    #[error("{}: {message}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file (decompressed) holds more bytes than the reader's limit
    /// ([`CsvOptions::max_bytes`]).
    #[error("{}: more than {limit} bytes (decompressed), the reader's limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// Features and labels that do not fit together.
    #[error("invalid data set: {0}")]
    Invalid(String),
}

/// Opens `path` for streaming reads, decompressing it when it starts with the gzip
/// magic bytes (whatever its name). The flag says whether it is gzip.
pub(crate) fn open_maybe_gzip(path: &Path) -> Result<(Box<dyn Read>, bool), DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file = BufReader::new(file);
    let head = file.fill_buf().map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((Box::new(flate2::bufread::MultiGzDecoder::new(file)), true))
    } else {
        Ok((Box::new(file), false))
    }
}

/// The error for a failed read from a reader of [`open_maybe_gzip`].
pub(crate) fn read_error(path: &Path, gzip: bool, e: std::io::Error) -> DataError {
    if gzip {
        DataError::Gzip {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    } else {
        DataError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes,
/// and stops with [`DataError::TooLarge`] once more than `max_bytes` (decompressed)
/// arrive: a small gzip bomb never inflates past the limit.
pub(crate) fn read_maybe_gzip(path: &Path, max_bytes: u64) -> Result<Vec<u8>, DataError> {
    let (reader, gzip) = open_maybe_gzip(path)?;
    let mut out = Vec::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| read_error(path, gzip, e))?;
    if out.len() as u64 > max_bytes {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            limit: max_bytes,
        });
    }
    Ok(out)
}

/// A small seeded generator (SplitMix64) for shuffling; the same seed gives the
/// same order on every platform.
#[derive(Clone, Debug)]
struct Shuffler(u64);

impl Shuffler {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Fisher-Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A permutation of `0..n` determined by `seed`.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Shuffler(seed).shuffle(&mut order);
    order
}

/// The indices of member `rank`'s part of `n` samples shuffled with `seed`.
///
/// # Panics
/// If `rank >= size`.
pub(crate) fn shuffled_shard_indices(n: usize, seed: u64, rank: usize, size: usize) -> Vec<usize> {
    let order = permutation(n, seed);
    shard_indices(n, rank, size)
        .into_iter()
        .map(|i| order[i])
        .collect()
}

/// The indices of member `rank`'s shard of `n` samples over `size` members.
///
/// # Panics
/// If `rank >= size`.
pub(crate) fn shard_indices(n: usize, rank: usize, size: usize) -> Vec<usize> {
    assert!(rank < size, "rank {rank} is not in a group of {size}");
    (rank..n).step_by(size).collect()
}

/// The sample indices of a seeded split of `n` samples: the first
/// `round(train_fraction * n)` of a permutation, then the rest.
pub(crate) fn split_indices(n: usize, train_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order = permutation(n, seed);
    let cut = (train_fraction.clamp(0.0, 1.0) * n as f64).round() as usize;
    let rest = order.split_off(cut);
    (order, rest)
}

/// How many batches of `batch_size` `n` samples make.
pub(crate) fn batch_count(n: usize, batch_size: usize, drop_last: bool) -> usize {
    if drop_last {
        n / batch_size
    } else {
        n.div_ceil(batch_size)
    }
}

/// Samples for supervised classification, held in memory: `len()` rows of `dim()`
/// f32 features (row-major, `[N, D]`) and one i32 class label per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    labels: Vec<i32>,
    dim: usize,
}

impl Dataset {
    /// A data set from row-major features (`labels.len()` rows of `dim` values) and
    /// labels, which must be non-negative class indices.
    pub fn new(features: Vec<f32>, labels: Vec<i32>, dim: usize) -> Result<Dataset, DataError> {
        if dim == 0 {
            return Err(DataError::Invalid(
                "samples need at least one feature".into(),
            ));
        }
        if features.len() != labels.len() * dim {
            return Err(DataError::Invalid(format!(
                "{} labels with {dim} features each need {} feature values, got {}",
                labels.len(),
                labels.len() * dim,
                features.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l < 0) {
            return Err(DataError::Invalid(format!(
                "label {} of sample {i} is negative; labels are class indices",
                labels[i]
            )));
        }
        Ok(Dataset {
            features,
            labels,
            dim,
        })
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per sample.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All features, row-major `[len(), dim()]`.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// All labels.
    pub fn labels(&self) -> &[i32] {
        &self.labels
    }

    /// The features of sample `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    /// One more than the largest label (0 for an empty set).
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m as usize + 1)
    }

    /// Applies `f` to every feature value, e.g. `|v| v / 16.0` to scale pixels to
    /// [0, 1].
    pub fn map_features(mut self, f: impl Fn(f32) -> f32) -> Dataset {
        self.features.iter_mut().for_each(|v| *v = f(*v));
        self
    }

    /// The samples at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        Dataset {
            features,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            dim: self.dim,
        }
    }

    /// Member `rank`'s part of the data for data-parallel training over `size`
    /// members: samples `rank`, `rank + size`, `rank + 2 size`, ... Together the
    /// shards hold every sample exactly once; their sizes differ by at most one.
    ///
    /// # Panics
    /// If `rank >= size`.
    ///
    /// ```
    /// use kiln_runtime::data::Dataset;
    /// let data = Dataset::new((0..5).map(|i| i as f32).collect(), vec![0, 1, 0, 1, 0], 1).unwrap();
    /// assert_eq!(data.shard(0, 2).features(), &[0.0, 2.0, 4.0]);
    /// assert_eq!(data.shard(1, 2).features(), &[1.0, 3.0]);
    /// ```
    pub fn shard(&self, rank: usize, size: usize) -> Dataset {
        self.select(&shard_indices(self.len(), rank, size))
    }

    /// Member `rank`'s part of one epoch of data-parallel training over `size`
    /// members: the samples shuffled with `seed` (as [`Batches::shuffle`]), then
    /// positions `rank`, `rank + size`, ... (PyTorch's `DistributedSampler`). The
    /// members' `k`-th batches of `b` samples together hold the samples of the
    /// `k`-th batch of `size * b` of the shuffled data: the global batch one
    /// process would train on.
    ///
    /// # Panics
    /// If `rank >= size`.
    pub fn shuffled_shard(&self, seed: u64, rank: usize, size: usize) -> Dataset {
        self.select(&shuffled_shard_indices(self.len(), seed, rank, size))
    }

    /// The samples in an order determined by `seed`.
    pub fn shuffled(&self, seed: u64) -> Dataset {
        self.select(&permutation(self.len(), seed))
    }

    /// Shuffles with `seed`, then puts the first `round(train_fraction * len())`
    /// samples in the first set and the rest in the second: a seeded train/test
    /// split. `train_fraction` is clamped to [0, 1].
    pub fn split(&self, train_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let (train, test) = split_indices(self.len(), train_fraction, seed);
        (self.select(&train), self.select(&test))
    }

    /// Batches of `batch_size` samples, in order, keeping a last partial batch;
    /// see [`Batches::shuffle`] and [`Batches::drop_last`].
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn batches(&self, batch_size: usize) -> Batches<'_> {
        assert!(batch_size > 0, "batch size must be positive");
        Batches {
            data: self,
            order: None,
            batch_size,
            drop_last: false,
            next: 0,
        }
    }

    /// The number of batches [`Dataset::batches`] yields.
    pub fn num_batches(&self, batch_size: usize, drop_last: bool) -> usize {
        batch_count(self.len(), batch_size, drop_last)
    }
}

/// One batch: features `x` (f32 `[b, D]`) and `labels` (i32 `[b]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Features, f32 `[b, D]`.
    pub x: HostTensor,
    /// Class labels, i32 `[b]`.
    pub labels: HostTensor,
}

impl Batch {
    /// The number of samples in the batch.
    pub fn len(&self) -> usize {
        self.labels.numel()
    }

    /// True for a batch without samples (never yielded by [`Batches`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Iterator over the [`Batch`]es of a [`Dataset`].
///
/// By default the last batch may be smaller than the others. A compiled training
/// step is specialized to its batch size, so training loops usually set
/// [`Batches::drop_last`]: with a seeded shuffle each epoch, every sample is still
/// seen over the epochs, and no second step has to be compiled for the remainder.
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Option<Vec<usize>>,
    batch_size: usize,
    drop_last: bool,
    next: usize,
}

impl Batches<'_> {
    /// Visits the samples in an order determined by `seed` (use a different seed
    /// each epoch, e.g. `base + epoch`).
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.order = Some(permutation(self.data.len(), seed));
        self
    }

    /// Skips a last batch smaller than the batch size.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    fn remaining(&self) -> usize {
        let left = self.data.len() - self.next;
        if self.drop_last {
            left / self.batch_size
        } else {
            left.div_ceil(self.batch_size)
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.remaining() == 0 {
            return None;
        }
        let start = self.next;
        let end = (start + self.batch_size).min(self.data.len());
        self.next = end;
        let b = end - start;
        let dim = self.data.dim;
        let mut features = Vec::with_capacity(b * dim);
        let mut labels = Vec::with_capacity(b);
        for k in start..end {
            let i = self.order.as_ref().map_or(k, |o| o[k]);
            features.extend_from_slice(self.data.row(i));
            labels.push(self.data.labels[i]);
        }
        Some(Batch {
            x: HostTensor::from_f32([b, dim], features).expect("b rows of dim values"),
            labels: HostTensor::from_i32([b], labels).expect("b labels"),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}
