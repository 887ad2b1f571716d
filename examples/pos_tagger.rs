//! Part-of-speech tagging on real data: English sentences from the Universal
//! Dependencies English Web Treebank (examples/data/README.md), each word tagged
//! with one of 17 universal POS tags, by the tagger of PyTorch's sequence-model
//! tutorial: embedding (64) -> LSTM (128) -> linear -> log-softmax + NLL, padding
//! masked out of the state and ignored by the loss; Adam (lr 1e-3), batch 16.
//!
//! The model is one `kiln::Network`: its forward function is written once, and
//! sentences batched by length (time-major `[steps, batch]`, padded to a multiple
//! of 8 steps) trace and compile one training step and one predictor per padded
//! length, all sharing the parameters. Words seen once in training map to
//! `<unk>`, so the model learns what to do with new words.
//!
//! Run with `cargo run --example pos_tagger` (add `--release` to build the
//! library optimized; the generated code is the same either way); `EPOCHS=N`
//! trains for another number of epochs than 10.

use std::collections::HashMap;
use std::time::Instant;

use kiln::Network;
use kiln::data::{SequenceBatch, TaggedSentence, Vocab, read_tagged, sequence_batches};
use kiln::prelude::*;

/// What one training run does.
pub struct TaggerRun {
    pub epochs: usize,
    /// Use only this many training sentences (all if `None`).
    pub train_sentences: Option<usize>,
    pub seed: u64,
    /// Print a line per epoch.
    pub verbose: bool,
}

/// What a run reached.
pub struct TaggerReport {
    /// The mean training loss of each epoch.
    pub losses: Vec<f64>,
    /// Token accuracy on the test split after each epoch.
    pub test_accuracy: Vec<f64>,
    /// Token accuracy on the test split of the most-frequent-tag baseline.
    pub baseline: f64,
}

const BATCH: usize = 16;
const EMBED: usize = 64;
const HIDDEN: usize = 128;
/// Padded lengths are multiples of this many steps.
const ROUND: usize = 8;

/// The tagger as one [`Network`]: over `tokens: i32[steps, BATCH]` with padding
/// `mask: f32[steps, BATCH]`, tag scores `[steps * BATCH, tags]`; trained with
/// the NLL of their log-softmax against `tags` (padding ignored) and Adam. Each
/// padded length traces and compiles its own graphs; all share the parameters.
fn tagger(words: usize, tags: usize, seed: u64) -> Network {
    Network::new("pos_tagger", &["tokens", "mask"], move |g, x| {
        let steps = x[0].dims()[0];
        let mut rng = Rng::seed(seed);
        let embed = nn::EmbeddingConfig::new(words, EMBED)
            .with_padding_idx(Vocab::PAD as usize)
            .init(g, "embed", &mut rng);
        let lstm = nn::Lstm::new(g, "lstm", EMBED, HIDDEN, &mut rng);
        let out = nn::Linear::new(g, "out", HIDDEN, tags, &mut rng);
        let (states, _) = lstm.forward_seq(&embed.forward(&x[0]), None, Some(&x[1]));
        out.forward(&states.reshape([steps * BATCH, HIDDEN]))
    })
    .with_loss(&["tags"], |scores, gold| {
        let n = scores.dims()[0];
        loss::nll_ignore_index(
            &scores.log_softmax(-1),
            &gold[0].reshape([n]),
            SequenceBatch::IGNORE,
        )
    })
    .with_optimizer(Adam::new(1e-3))
}

/// The share of real tokens of `batches` tagged right.
fn accuracy(
    batches: &[SequenceBatch],
    net: &mut Network,
) -> Result<f64, Box<dyn std::error::Error>> {
    let (mut right, mut total) = (0usize, 0usize);
    for b in batches {
        let scores = net.predict(&[("tokens", &b.tokens), ("mask", &b.mask)])?;
        let scores = scores.as_f32().ok_or("scores are f32")?;
        let tags = scores.len() / b.tags.numel();
        for (row, &gold) in scores
            .chunks(tags)
            .zip(b.tags.as_i32().ok_or("tags are i32")?)
        {
            if gold != SequenceBatch::IGNORE {
                // The first highest score, as argmax.
                let best = (0..tags).fold(0, |a, k| if row[k] > row[a] { k } else { a });
                total += 1;
                right += usize::from(best as i32 == gold);
            }
        }
    }
    Ok(right as f64 / total.max(1) as f64)
}

/// Each word's most frequent training tag (unknown words: the most frequent tag
/// overall), scored on `test`.
fn baseline(train: &[TaggedSentence], test: &[TaggedSentence]) -> f64 {
    let mut counts: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    let mut overall: HashMap<&str, usize> = HashMap::new();
    for s in train {
        for (w, t) in s.tokens.iter().zip(&s.tags) {
            *counts.entry(w).or_default().entry(t).or_default() += 1;
            *overall.entry(t).or_default() += 1;
        }
    }
    let best = |m: &HashMap<&str, usize>| -> String {
        let mut v: Vec<(&str, usize)> = m.iter().map(|(&t, &c)| (t, c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v[0].0.to_string()
    };
    let fallback = best(&overall);
    let (mut right, mut total) = (0, 0);
    for s in test {
        for (w, t) in s.tokens.iter().zip(&s.tags) {
            let guess = counts.get(w.as_str()).map_or(fallback.clone(), &best);
            right += usize::from(guess == *t);
            total += 1;
        }
    }
    right as f64 / total as f64
}

/// Trains the tagger on the train split and measures it on the test split.
pub fn run(options: &TaggerRun) -> Result<TaggerReport, Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/ud_en_ewt_pos.tsv.gz"
    );
    let corpus = read_tagged(path)?;
    let mut train = corpus.split("train");
    if let Some(n) = options.train_sentences {
        train = &train[..n.min(train.len())];
    }
    let test = corpus.split("test");
    let words = Vocab::of_words(train.iter().map(|s| &s.tokens[..]), 2);
    let tags = Vocab::of_tags(train.iter().chain(test).map(|s| &s.tags[..]));
    let sizes = (words.len(), tags.len());
    let test_batches = sequence_batches(test, &words, &tags, BATCH, ROUND, 0)?;
    let baseline = baseline(train, test);
    if options.verbose {
        let tokens: usize = train.iter().map(|s| s.tokens.len()).sum();
        println!(
            "UD English-EWT: {} training sentences ({tokens} tokens), {} test sentences; \
             {} words (seen twice or more) and <unk>, {} tags",
            train.len(),
            test.len(),
            words.len() - 2,
            tags.len()
        );
        println!("most-frequent-tag baseline: test accuracy {:.3}", baseline);
    }

    let mut net = tagger(sizes.0, sizes.1, options.seed);
    let mut report = TaggerReport {
        losses: Vec::new(),
        test_accuracy: Vec::new(),
        baseline,
    };
    for epoch in 0..options.epochs {
        let start = Instant::now();
        let batches = sequence_batches(
            train,
            &words,
            &tags,
            BATCH,
            ROUND,
            options.seed + epoch as u64,
        )?;
        let (mut sum, mut count) = (0.0, 0usize);
        for b in &batches {
            let out = net.train(&[("tokens", &b.tokens), ("mask", &b.mask), ("tags", &b.tags)])?;
            sum += out.loss * b.tokens_count as f64;
            count += b.tokens_count;
        }
        let acc = accuracy(&test_batches, &mut net)?;
        report.losses.push(sum / count as f64);
        report.test_accuracy.push(acc);
        if options.verbose {
            println!(
                "epoch {:>2}/{}: train loss {:.4}, test accuracy {:.3} ({:.1} s, {} graphs compiled)",
                epoch + 1,
                options.epochs,
                sum / count as f64,
                acc,
                start.elapsed().as_secs_f64(),
                net.compilations()
            );
        }
    }
    Ok(report)
}

#[allow(dead_code)] // the test includes this file for `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs = std::env::var("EPOCHS")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(10);
    let report = run(&TaggerRun {
        epochs,
        train_sentences: None,
        seed: 0,
        verbose: true,
    })?;
    println!(
        "test accuracy: {:.3}",
        report.test_accuracy.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
