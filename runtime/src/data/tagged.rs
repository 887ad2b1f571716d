//! Sequence labelling data (part-of-speech tagging, named entities): sentences of
//! tokens with one tag each, read from tab-separated files; vocabularies mapping
//! words and tags to ids; and batches of padded, time-major id tensors with a mask,
//! bucketed by length so that little of each batch is padding.
//!
//! ```
//! use kiln_runtime::data::{Vocab, read_tagged, sequence_batches};
//!
//! let dir = std::env::temp_dir().join(format!("kiln-tagged-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("pos.tsv");
//! std::fs::write(&path, "split\ttokens\ttags\ntrain\tthe dog barks\tDET NOUN VERB\n\
//!                        train\tdogs bark\tNOUN VERB\ntest\tthe cat\tDET NOUN\n").unwrap();
//! let corpus = read_tagged(&path).unwrap();
//! let train = corpus.split("train");
//! let words = Vocab::of_words(train.iter().map(|s| &s.tokens[..]), 1);
//! let tags = Vocab::of_tags(train.iter().map(|s| &s.tags[..]));
//! assert_eq!(words.id("cat"), Vocab::UNK); // unseen in training
//! let batches = sequence_batches(train, &words, &tags, 2, 4, 0).unwrap();
//! assert_eq!(batches[0].tokens.shape().dims(), &[4, 2]); // [steps, batch]
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kiln_ir::HostTensor;

use super::{DataError, Shuffler, read_maybe_gzip};

/// The largest file [`read_tagged`] reads (decompressed).
pub const MAX_TAGGED_BYTES: u64 = 1 << 30;

/// One sentence: its tokens and their tags, as many of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedSentence {
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
}

/// Sentences by split name (`train`, `test`, ...), in file order.
#[derive(Clone, Debug, Default)]
pub struct TaggedCorpus {
    splits: BTreeMap<String, Vec<TaggedSentence>>,
}

impl TaggedCorpus {
    /// The sentences of split `name` (empty if the file has none).
    pub fn split(&self, name: &str) -> &[TaggedSentence] {
        self.splits.get(name).map_or(&[], Vec::as_slice)
    }

    /// The split names, in order.
    pub fn split_names(&self) -> impl Iterator<Item = &str> {
        self.splits.keys().map(String::as_str)
    }
}

/// Reads a tab-separated file of tagged sentences, plain or gzip-compressed: one
/// sentence per line as `split<TAB>tokens<TAB>tags`, tokens and tags separated by
/// single spaces and as many of each; a first line `split<TAB>tokens<TAB>tags` is a
/// header. Errors name the line.
pub fn read_tagged(path: impl AsRef<Path>) -> Result<TaggedCorpus, DataError> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path, MAX_TAGGED_BYTES)?;
    let line_err = |line: usize, message: String| DataError::Line {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = String::from_utf8(bytes).map_err(|e| DataError::Content {
        path: path.to_path_buf(),
        message: format!("not UTF-8: {e}"),
    })?;
    let mut corpus = TaggedCorpus::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if (i == 0 && line.starts_with("split\t")) || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [split, tokens, tags] = fields[..] else {
            return Err(line_err(
                i + 1,
                format!(
                    "expected 3 tab-separated fields (split, tokens, tags), found {}",
                    fields.len()
                ),
            ));
        };
        let words = |s: &str| -> Vec<String> { s.split(' ').map(str::to_string).collect() };
        let (tokens, tags) = (words(tokens), words(tags));
        if tokens.iter().chain(&tags).any(String::is_empty) {
            return Err(line_err(
                i + 1,
                "an empty token or tag (two spaces in a row?)".into(),
            ));
        }
        if tokens.len() != tags.len() {
            return Err(line_err(
                i + 1,
                format!("{} tokens but {} tags", tokens.len(), tags.len()),
            ));
        }
        corpus
            .splits
            .entry(split.to_string())
            .or_default()
            .push(TaggedSentence { tokens, tags });
    }
    if corpus.splits.is_empty() {
        return Err(DataError::Content {
            path: path.to_path_buf(),
            message: "no sentences".into(),
        });
    }
    Ok(corpus)
}

/// Ids for words or tags.
///
/// A word vocabulary ([`Vocab::of_words`]) reserves id [`Vocab::PAD`] for padding
/// and [`Vocab::UNK`] for words it does not know; a tag vocabulary
/// ([`Vocab::of_tags`]) numbers the tags from 0 and knows every tag it will see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    entries: Vec<String>,
    ids: HashMap<String, i32>,
    unknown: Option<i32>,
}

impl Vocab {
    /// The id of padding in a word vocabulary.
    pub const PAD: i32 = 0;
    /// The id of unknown words in a word vocabulary.
    pub const UNK: i32 = 1;

    /// The words seen at least `min_count` times in `sentences` (in order of first
    /// appearance), after `<pad>` and `<unk>`. A `min_count` of 2 maps words seen
    /// once to `<unk>`, so the model learns what to do with unknown words.
    pub fn of_words<'a>(sentences: impl Iterator<Item = &'a [String]>, min_count: usize) -> Vocab {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for s in sentences {
            for w in s {
                match at.get(w.as_str()) {
                    Some(&i) => counts[i].1 += 1,
                    None => {
                        at.insert(w, counts.len());
                        counts.push((w, 1));
                    }
                }
            }
        }
        let kept = counts
            .into_iter()
            .filter(|&(_, c)| c >= min_count)
            .map(|(w, _)| w.to_string());
        Self::from_entries(
            ["<pad>".to_string(), "<unk>".to_string()]
                .into_iter()
                .chain(kept),
            Some(Self::UNK),
        )
    }

    /// Every tag in `sentences`, numbered from 0 in sorted order.
    pub fn of_tags<'a>(sentences: impl Iterator<Item = &'a [String]>) -> Vocab {
        let mut tags: Vec<String> = sentences.flatten().cloned().collect();
        tags.sort();
        tags.dedup();
        Self::from_entries(tags.into_iter(), None)
    }

    fn from_entries(entries: impl Iterator<Item = String>, unknown: Option<i32>) -> Vocab {
        let entries: Vec<String> = entries.collect();
        let ids = entries
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as i32))
            .collect();
        Vocab {
            entries,
            ids,
            unknown,
        }
    }

    /// The id of `word`: its own, else `<unk>` in a word vocabulary.
    ///
    /// # Panics
    /// For a tag the tag vocabulary does not hold (see [`Vocab::get`]).
    pub fn id(&self, word: &str) -> i32 {
        self.get(word)
            .or(self.unknown)
            .unwrap_or_else(|| panic!("`{word}` is not in the vocabulary"))
    }

    /// The id of `word` if the vocabulary holds it.
    pub fn get(&self, word: &str) -> Option<i32> {
        self.ids.get(word).copied()
    }

    /// The entry with id `id`.
    pub fn entry(&self, id: i32) -> Option<&str> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(String::as_str)
    }

    /// The number of ids.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the vocabulary has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A batch of sentences, time-major and padded to `steps`.
#[derive(Clone, Debug)]
pub struct SequenceBatch {
    /// Word ids, `i32[steps, batch]`, [`Vocab::PAD`] after each sentence's end.
    pub tokens: HostTensor,
    /// Tag ids, `i32[steps, batch]`, [`SequenceBatch::IGNORE`] at padding.
    pub tags: HostTensor,
    /// 1 at real tokens, 0 at padding, `f32[steps, batch]`.
    pub mask: HostTensor,
    /// The number of real tokens.
    pub tokens_count: usize,
}

impl SequenceBatch {
    /// The tag id of padded positions, for losses that ignore a label.
    pub const IGNORE: i32 = -1;
}

/// `sentences` in batches of `batch`, time-major. Sentences are shuffled with
/// `seed`, grouped by their length rounded up to a multiple of `round` steps and cut
/// into batches, so a batch pads little and has one of few distinct lengths (few
/// compiled steps); the last batch is filled up with empty sentences (all
/// padding) to `batch`. The batch order is shuffled too. Tags must be in
/// `tags`.
pub fn sequence_batches(
    sentences: &[TaggedSentence],
    words: &Vocab,
    tags: &Vocab,
    batch: usize,
    round: usize,
    seed: u64,
) -> Result<Vec<SequenceBatch>, DataError> {
    if batch == 0 || round == 0 {
        return Err(DataError::Invalid(
            "batch size and rounding must be positive".into(),
        ));
    }
    // Shuffled, then grouped by padded length: each epoch's seed mixes the
    // sentences of one length bucket differently.
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    let mut shuffler = Shuffler(seed);
    shuffler.shuffle(&mut order);
    order.sort_by_key(|&i| sentences[i].tokens.len().div_ceil(round));
    let mut batches = Vec::new();
    for group in order.chunks(batch) {
        let longest = group
            .iter()
            .map(|&i| sentences[i].tokens.len())
            .max()
            .unwrap_or(0);
        let steps = longest.div_ceil(round).max(1) * round;
        let mut tok = vec![Vocab::PAD; steps * batch];
        let mut tag = vec![SequenceBatch::IGNORE; steps * batch];
        let mut mask = vec![0.0f32; steps * batch];
        let mut count = 0;
        for (b, &i) in group.iter().enumerate() {
            let s = &sentences[i];
            for (t, (w, g)) in s.tokens.iter().zip(&s.tags).enumerate() {
                let at = t * batch + b;
                tok[at] = words.id(w);
                tag[at] = tags.get(g).ok_or_else(|| {
                    DataError::Invalid(format!("tag `{g}` is not in the tag vocabulary"))
                })?;
                mask[at] = 1.0;
                count += 1;
            }
        }
        let tensor = |v| HostTensor::from_i32([steps, batch], v).expect("sized");
        batches.push(SequenceBatch {
            tokens: tensor(tok),
            tags: tensor(tag),
            mask: HostTensor::from_f32([steps, batch], mask).expect("sized"),
            tokens_count: count,
        });
    }
    shuffler.shuffle(&mut batches);
    Ok(batches)
}
