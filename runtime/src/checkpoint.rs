//! Checkpoints: named tensors (parameters and optimizer state) in the
//! [safetensors](https://huggingface.co/docs/safetensors) format, which PyTorch,
//! candle and JAX read.
//!
//! Writes are atomic: the data goes to a temporary file in the same directory, is
//! flushed to disk, and only then renamed over the old checkpoint, so a crash during
//! [`save`] leaves the previous checkpoint intact. Loading against the expected names
//! and types ([`load_checked`]) reports every mismatch at once.
//!
//! ```
//! use kiln_ir::{HostTensor, TensorType};
//! use kiln_runtime::checkpoint;
//!
//! let path = std::env::temp_dir().join(format!("kiln-doc-{}.safetensors", std::process::id()));
//! let w = HostTensor::from_f32([2], vec![0.5, -1.0]).unwrap();
//! checkpoint::save(&path, [("w", &w)]).unwrap();
//! let loaded = checkpoint::load_checked(&path, [("w", w.ty())]).unwrap();
//! assert_eq!(loaded, vec![("w".to_string(), w)]);
//! std::fs::remove_file(&path).unwrap();
//! ```

use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_ir::{DType, HostTensor, Shape, TensorData, TensorType};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// Why a checkpoint could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (truncated, corrupted, not one).
    #[error("{}: not a valid safetensors checkpoint: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file holds a tensor kiln has no element type for.
    #[error("{}: tensor `{name}` has element type {dtype}, which kiln does not support", path.display())]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its safetensors dtype.
        dtype: String,
    },
    /// The file does not hold what the model expects.
    #[error("{}: the checkpoint does not match the model:\n{}", path.display(), list(mismatches))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Every difference found.
        mismatches: Vec<Mismatch>,
    },
    /// Two tensors to save have the same name.
    #[error("tensor `{0}` is given twice")]
    DuplicateName(String),
    /// A data-parallel group could not share the checkpoint, or the member that
    /// read it failed.
    #[error(transparent)]
    Group(#[from] kiln_codegen::collective::CollectiveError),
}

fn list(mismatches: &[Mismatch]) -> String {
    mismatches
        .iter()
        .map(|m| format!("  - {m}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One difference between a checkpoint and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// An expected tensor is not in the file.
    Missing {
        /// The tensor.
        name: String,
    },
    /// The file holds a tensor that was not expected.
    Unexpected {
        /// The tensor.
        name: String,
    },
    /// A tensor has another element type or shape.
    Type {
        /// The tensor.
        name: String,
        /// The expected type.
        expected: TensorType,
        /// The type in the file.
        found: TensorType,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { name } => write!(f, "`{name}` is missing from the checkpoint"),
            Mismatch::Unexpected { name } => {
                write!(f, "`{name}` is in the checkpoint but not in the model")
            }
            Mismatch::Type {
                name,
                expected,
                found,
            } => write!(
                f,
                "`{name}` is {expected} in the model but {found} in the checkpoint"
            ),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Little-endian bytes of a tensor's elements, and its safetensors dtype.
fn to_bytes(t: &HostTensor) -> (Dtype, Vec<u8>) {
    match t.data() {
        TensorData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::I32(v) => (Dtype::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        TensorData::Bool(v) => (Dtype::BOOL, v.iter().map(|&b| u8::from(b)).collect()),
    }
}

/// The safetensors file contents for `tensors`.
pub fn serialize<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a HostTensor)>,
) -> Result<Vec<u8>, CheckpointError> {
    let mut encoded: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in tensors {
        if encoded.iter().any(|(n, ..)| *n == name) {
            return Err(CheckpointError::DuplicateName(name.to_string()));
        }
        let (dtype, bytes) = to_bytes(t);
        encoded.push((name, dtype, t.shape().dims().to_vec(), bytes));
    }
    let views = encoded
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.to_string(), v))
                .map_err(|e| CheckpointError::Format {
                    path: PathBuf::new(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| CheckpointError::Format {
        path: PathBuf::new(),
        message: e.to_string(),
    })
}

/// A checkpoint written to a temporary file next to its destination, not yet in
/// place: [`PendingCheckpoint::commit`] renames it over the destination. Dropping it
/// uncommitted removes the temporary file. [`save`] is `stage` + `commit`; the two
/// steps are public so that tests (and cautious callers) can act in between.
#[derive(Debug)]
pub struct PendingCheckpoint {
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl PendingCheckpoint {
    /// The temporary file holding the new checkpoint.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Atomically replaces the destination with the new checkpoint, then flushes the
    /// directory entry (where the platform allows it).
    pub fn commit(mut self) -> Result<(), CheckpointError> {
        fs::rename(&self.temp, &self.dest).map_err(io_error(&self.dest))?;
        self.committed = true;
        #[cfg(unix)]
        if let Some(dir) = self.dest.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            // Makes the rename durable; failure here does not undo it.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PendingCheckpoint {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Writes `tensors` to a fresh temporary file in `path`'s directory and flushes it
/// to disk; the destination is untouched until [`PendingCheckpoint::commit`].
pub fn stage<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, &'a HostTensor)>,
) -> Result<PendingCheckpoint, CheckpointError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dest = path.as_ref().to_path_buf();
    let bytes = serialize(tensors).map_err(|e| match e {
        CheckpointError::Format { message, .. } => CheckpointError::Format {
            path: dest.clone(),
            message,
        },
        other => other,
    })?;
    let file_name = dest
        .file_name()
        .ok_or_else(|| CheckpointError::Io {
            path: dest.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a checkpoint path must name a file",
            ),
        })?
        .to_string_lossy()
        .into_owned();
    let temp = dest.with_file_name(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let pending = PendingCheckpoint {
        temp,
        dest,
        committed: false,
    };
    let mut file = File::create(&pending.temp).map_err(io_error(&pending.temp))?;
    file.write_all(&bytes).map_err(io_error(&pending.temp))?;
    file.sync_all().map_err(io_error(&pending.temp))?;
    Ok(pending)
}

/// Saves `tensors` (name and value, e.g. a model's parameters and its optimizer
/// state) to `path` in the safetensors format, atomically.
pub fn save<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, &'a HostTensor)>,
) -> Result<(), CheckpointError> {
    stage(path, tensors)?.commit()
}

fn from_view(
    path: &Path,
    name: &str,
    view: &TensorView<'_>,
) -> Result<HostTensor, CheckpointError> {
    let bytes = view.data();
    let shape = Shape::new(view.shape().to_vec());
    let data = match view.dtype() {
        Dtype::F32 => TensorData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::F64 => TensorData::F64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        Dtype::I32 => TensorData::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::BOOL => {
            if let Some(i) = bytes.iter().position(|&b| b > 1) {
                return Err(CheckpointError::Format {
                    path: path.to_path_buf(),
                    message: format!(
                        "bool tensor `{name}` holds byte {:#04x} at element {i}; expected 0 or 1",
                        bytes[i]
                    ),
                });
            }
            TensorData::Bool(bytes.iter().map(|&b| b == 1).collect())
        }
        other => {
            return Err(CheckpointError::UnsupportedDType {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    HostTensor::new(shape, data).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: format!("tensor `{name}`: {e}"),
    })
}

fn kiln_dtype(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 => Some(DType::F32),
        Dtype::F64 => Some(DType::F64),
        Dtype::I32 => Some(DType::I32),
        Dtype::BOOL => Some(DType::Bool),
        _ => None,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(io_error(path))
}

fn parse<'b>(path: &Path, bytes: &'b [u8]) -> Result<SafeTensors<'b>, CheckpointError> {
    SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        message: format!("{e} ({} bytes read)", bytes.len()),
    })
}

/// Loads every tensor of a safetensors file, sorted by name.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<(String, HostTensor)>, CheckpointError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let mut names = file.names();
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| {
            let view = file.tensor(name).map_err(|e| CheckpointError::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            Ok((name.to_string(), from_view(path, name, &view)?))
        })
        .collect()
}

/// Loads the tensors `expected` names, in that order, checking that the file holds
/// exactly these names with these types. All differences (missing, unexpected,
/// other dtype or shape) are reported together in [`CheckpointError::Mismatch`].
pub fn load_checked<S: AsRef<str>>(
    path: impl AsRef<Path>,
    expected: impl IntoIterator<Item = (S, TensorType)>,
) -> Result<Vec<(String, HostTensor)>, CheckpointError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let expected: Vec<(String, TensorType)> = expected
        .into_iter()
        .map(|(n, t)| (n.as_ref().to_string(), t))
        .collect();
    let mut mismatches = Vec::new();
    let mut found = Vec::new();
    for (name, ty) in &expected {
        let Ok(view) = file.tensor(name) else {
            mismatches.push(Mismatch::Missing { name: name.clone() });
            continue;
        };
        let Some(dtype) = kiln_dtype(view.dtype()) else {
            return Err(CheckpointError::UnsupportedDType {
                path: path.to_path_buf(),
                name: name.clone(),
                dtype: format!("{:?}", view.dtype()),
            });
        };
        let got = TensorType::new(dtype, view.shape().to_vec());
        if got != *ty {
            mismatches.push(Mismatch::Type {
                name: name.clone(),
                expected: ty.clone(),
                found: got,
            });
            continue;
        }
        found.push((name.clone(), from_view(path, name, &view)?));
    }
    let mut extra: Vec<&str> = file
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|(e, _)| e == n))
        .collect();
    extra.sort_unstable();
    mismatches.extend(extra.into_iter().map(|n| Mismatch::Unexpected {
        name: n.to_string(),
    }));
    if mismatches.is_empty() {
        Ok(found)
    } else {
        Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            mismatches,
        })
    }
}
