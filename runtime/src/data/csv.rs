//! A CSV reader for numeric data sets: one sample per line, feature columns and one
//! integer label column, plain or gzip-compressed.

use std::path::Path;

use super::{DataError, Dataset, read_maybe_gzip};

/// Whether the first line of a CSV file is a header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Header {
    /// A header if any field of the first line is not a number.
    #[default]
    Auto,
    /// The first line is a header and is skipped.
    Present,
    /// Every line is data.
    Absent,
}

/// Which column holds the class label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LabelColumn {
    /// The last column (digits, iris).
    #[default]
    Last,
    /// The first column (the MNIST CSV exports).
    First,
    /// Column `i`, counting from 0.
    Index(usize),
}

/// How to read a CSV file; the default reads comma-separated values, detects a
/// header, and takes the label from the last column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// Whether the first line is a header.
    pub header: Header,
    /// Which column is the label.
    pub label: LabelColumn,
    /// The field separator.
    pub delimiter: u8,
    /// The most bytes the file may hold, decompressed ([`DataError::TooLarge`]
    /// beyond): the whole text is held in memory while it is parsed, and a small
    /// gzip bomb must not inflate without end. [`CsvOptions::DEFAULT_MAX_BYTES`] by
    /// default.
    pub max_bytes: u64,
}

impl CsvOptions {
    /// The default [`CsvOptions::max_bytes`], 2 GiB: twenty times MNIST's CSV export
    /// (110 MB), and memory any machine that trains on such a set has.
    pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: Header::Auto,
            label: LabelColumn::Last,
            delimiter: b',',
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// Reads a numeric CSV file into a [`Dataset`].
///
/// Every line holds the same number of fields: numbers (parsed as f32) and one
/// non-negative integer label. Blank lines are skipped, fields may be surrounded by
/// spaces, and `\r\n` line ends are accepted. A file starting with the gzip magic
/// bytes is decompressed first. Any malformed line is an error naming the file, the
/// line, the column and what was expected.
///
/// ```no_run
/// use kiln_runtime::data::{read_csv, CsvOptions};
/// let digits = read_csv("examples/data/digits.csv.gz", &CsvOptions::default())?;
/// assert_eq!(digits.dim(), 64);
/// # Ok::<(), kiln_runtime::data::DataError>(())
/// ```
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path, options.max_bytes)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DataError::Line {
            path: path.to_path_buf(),
            line,
            message: "expected UTF-8 text (is this a binary file?)".into(),
        }
    })?;
    let delimiter = char::from(options.delimiter);
    let line_error = |line: usize, message: String| DataError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };

    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();

    let first_is_header = match options.header {
        Header::Present => true,
        Header::Absent => false,
        Header::Auto => lines.peek().is_some_and(|(_, l)| {
            l.split(delimiter)
                .any(|field| field.trim().parse::<f64>().is_err())
        }),
    };
    if first_is_header {
        lines.next();
    }

    let mut columns: Option<(usize, usize)> = None; // (fields per line, label column)
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (line, content) in lines {
        let fields: Vec<&str> = content.split(delimiter).map(str::trim).collect();
        let (width, label_col) = match columns {
            Some(c) => c,
            None => {
                if fields.len() < 2 {
                    return Err(line_error(
                        line,
                        format!(
                            "expected at least two `{delimiter}`-separated fields (features and a label), found {}",
                            fields.len()
                        ),
                    ));
                }
                let label_col = match options.label {
                    LabelColumn::Last => fields.len() - 1,
                    LabelColumn::First => 0,
                    LabelColumn::Index(i) if i < fields.len() => i,
                    LabelColumn::Index(i) => {
                        return Err(line_error(
                            line,
                            format!(
                                "label column {i} does not exist: the line has {} fields",
                                fields.len()
                            ),
                        ));
                    }
                };
                *columns.insert((fields.len(), label_col))
            }
        };
        if fields.len() != width {
            return Err(line_error(
                line,
                format!(
                    "expected {width} fields like the first data line, found {}",
                    fields.len()
                ),
            ));
        }
        for (col, field) in fields.iter().enumerate() {
            if col == label_col {
                labels.push(
                    parse_label(field)
                        .map_err(|m| line_error(line, format!("column {}: {m}", col + 1)))?,
                );
            } else {
                let v: f32 = field.parse().map_err(|_| {
                    line_error(
                        line,
                        format!("column {}: expected a number, found `{field}`", col + 1),
                    )
                })?;
                features.push(v);
            }
        }
    }
    let Some((width, _)) = columns else {
        return Err(DataError::Content {
            path: path.to_path_buf(),
            message: "no data lines".into(),
        });
    };
    Dataset::new(features, labels, width - 1).map_err(|e| DataError::Content {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A class label: a non-negative integer that fits i32 (`3` or `3.0`).
fn parse_label(field: &str) -> Result<i32, String> {
    let bad = || format!("expected a non-negative integer class label, found `{field}`");
    if let Ok(v) = field.parse::<i64>() {
        return i32::try_from(v).ok().filter(|v| *v >= 0).ok_or_else(bad);
    }
    match field.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && (0.0..=i32::MAX as f64).contains(&v) => Ok(v as i32),
        _ => Err(bad()),
    }
}
