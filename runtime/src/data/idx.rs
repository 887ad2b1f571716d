//! A reader for the IDX format that MNIST and Fashion-MNIST ship in: a 4-byte magic
//! number (two zero bytes, an element-type code, the number of dimensions), each
//! dimension as a big-endian u32, then the elements, big-endian, row-major.

use std::io::Read;
use std::path::Path;

use super::{DataError, Dataset, open_maybe_gzip, read_error};

/// The elements of an IDX file, in the file's element type.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    /// Type code 0x08.
    U8(Vec<u8>),
    /// Type code 0x09.
    I8(Vec<i8>),
    /// Type code 0x0B.
    I16(Vec<i16>),
    /// Type code 0x0C.
    I32(Vec<i32>),
    /// Type code 0x0D.
    F32(Vec<f32>),
    /// Type code 0x0E.
    F64(Vec<f64>),
}

impl IdxData {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements converted to f32.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            IdxData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            IdxData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            IdxData::I16(v) => v.iter().map(|&x| f32::from(x)).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::F32(v) => v.clone(),
            IdxData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The elements as i32 if the type is an integer type.
    pub fn to_i32_vec(&self) -> Option<Vec<i32>> {
        match self {
            IdxData::U8(v) => Some(v.iter().map(|&x| i32::from(x)).collect()),
            IdxData::I8(v) => Some(v.iter().map(|&x| i32::from(x)).collect()),
            IdxData::I16(v) => Some(v.iter().map(|&x| i32::from(x)).collect()),
            IdxData::I32(v) => Some(v.clone()),
            IdxData::F32(_) | IdxData::F64(_) => None,
        }
    }
}

/// The contents of an IDX file: its dimensions and elements.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The dimensions, outermost first (MNIST images: `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: IdxData,
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// How many bytes after the last element an error counts before it gives up
/// counting ("more than N").
const TRAILING_COUNT_LIMIT: u64 = 1 << 16;

/// Reads an IDX file (gzip-compressed or not).
///
/// The header is read first and the data after it streamed: exactly as many bytes
/// as the dimensions declare are read, so a compressed file that inflates to more
/// (a gzip bomb) is never inflated past the declared size plus a few bytes.
/// A wrong magic number, an unknown type code, a file that ends early or that has
/// bytes after the last element is an error naming the file, the byte offset (in the
/// decompressed data) and what was expected.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray, DataError> {
    let path = path.as_ref();
    let (mut reader, gzip) = open_maybe_gzip(path)?;
    let io = |e| read_error(path, gzip, e);
    let err = |offset: usize, message: String| DataError::Binary {
        path: path.to_path_buf(),
        offset: offset as u64,
        message,
    };
    let mut magic = [0u8; 4];
    let got = fill(&mut reader, &mut magic).map_err(io)?;
    if got < 4 {
        return Err(err(
            got,
            format!("expected a 4-byte IDX magic number, the file has {got} bytes"),
        ));
    }
    for (i, &b) in magic[..2].iter().enumerate() {
        if b != 0 {
            return Err(err(
                i,
                format!("expected 0x00 (IDX magic number 0x0000TTNN), found {b:#04x}"),
            ));
        }
    }
    let (code, ndims) = (magic[2], usize::from(magic[3]));
    let size = match code {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        other => {
            return Err(err(
                2,
                format!(
                    "expected an IDX type code (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64), found {other:#04x}"
                ),
            ));
        }
    };
    if ndims == 0 {
        return Err(err(3, "expected at least one dimension, found 0".into()));
    }
    let data_start = 4 + 4 * ndims;
    let mut header = vec![0u8; 4 * ndims];
    let got = fill(&mut reader, &mut header).map_err(io)?;
    if got < header.len() {
        return Err(err(
            4 + got,
            format!(
                "expected {ndims} dimensions of 4 bytes each, the file ends after {} of them",
                got / 4
            ),
        ));
    }
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(size).map(|b| (n, b)));
    let Some((count, data_len)) = count else {
        return Err(err(
            4,
            format!("dimensions {dims:?} overflow the address space"),
        ));
    };
    // Read exactly the declared data; the vector grows with what arrives, so a
    // header that lies about a short file allocates no more than the file holds.
    let mut body = Vec::new();
    (&mut reader)
        .take(data_len as u64)
        .read_to_end(&mut body)
        .map_err(io)?;
    if body.len() < data_len {
        return Err(err(
            data_start + body.len(),
            format!(
                "expected {data_len} bytes of data for dimensions {dims:?} ({count} elements of {size} bytes), the file ends after {}",
                body.len()
            ),
        ));
    }
    let trailing = std::io::copy(
        &mut (&mut reader).take(TRAILING_COUNT_LIMIT + 1),
        &mut std::io::sink(),
    )
    .map_err(io)?;
    if trailing > 0 {
        let more = if trailing > TRAILING_COUNT_LIMIT {
            format!("more than {TRAILING_COUNT_LIMIT}")
        } else {
            trailing.to_string()
        };
        return Err(err(
            data_start + data_len,
            format!(
                "expected the file to end after {count} elements of dimensions {dims:?}, found {more} more bytes"
            ),
        ));
    }
    let body = &body[..];
    let data = match code {
        0x08 => IdxData::U8(body.to_vec()),
        0x09 => IdxData::I8(body.iter().map(|&b| b as i8).collect()),
        0x0B => IdxData::I16(
            body.chunks_exact(2)
                .map(|c| i16::from_be_bytes([c[0], c[1]]))
                .collect(),
        ),
        0x0C => IdxData::I32(
            body.chunks_exact(4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        0x0D => IdxData::F32(
            body.chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        _ => IdxData::F64(
            body.chunks_exact(8)
                .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
    };
    Ok(IdxArray { dims, data })
}

/// A [`Dataset`] from an IDX file of samples (`[N, ...]`, each sample flattened to
/// one row of f32 values, unscaled: MNIST pixels stay 0..255) and an IDX file of N
/// integer labels.
pub fn read_idx_dataset(
    samples: impl AsRef<Path>,
    labels: impl AsRef<Path>,
) -> Result<Dataset, DataError> {
    let (samples, labels) = (samples.as_ref(), labels.as_ref());
    let x = read_idx(samples)?;
    let y = read_idx(labels)?;
    let content = |path: &Path, message: String| DataError::Content {
        path: path.to_path_buf(),
        message,
    };
    if x.dims.len() < 2 {
        return Err(content(
            samples,
            format!(
                "expected samples of dimensions [N, ...] with at least 2 dimensions, found {:?}",
                x.dims
            ),
        ));
    }
    if y.dims.len() != 1 {
        return Err(content(
            labels,
            format!("expected labels of dimensions [N], found {:?}", y.dims),
        ));
    }
    if x.dims[0] != y.dims[0] {
        return Err(content(
            labels,
            format!(
                "{} labels for {} samples in {}",
                y.dims[0],
                x.dims[0],
                samples.display()
            ),
        ));
    }
    let label_values = y.data.to_i32_vec().ok_or_else(|| {
        content(
            labels,
            "expected integer labels, found floating-point elements".into(),
        )
    })?;
    let dim = x.dims[1..].iter().product();
    Dataset::new(x.data.to_f32_vec(), label_values, dim).map_err(|e| content(labels, e.to_string()))
}
