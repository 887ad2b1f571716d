//! Data sets, batching and the CSV, IDX and tagged-sentence readers, on small files
//! written here, well formed and malformed.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_runtime::data::{
    CsvOptions, DataError, Dataset, Header, IdxData, LabelColumn, SequenceBatch, Vocab, read_csv,
    read_idx, read_idx_dataset, read_tagged, sequence_batches,
};
use kiln_testutil::TempDir;

/// Writes `bytes` gzip-compressed to `name` in `dir`.
fn write_gz(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    dir.write(name, &enc.finish().unwrap())
}

fn csv(path: &Path) -> Result<Dataset, DataError> {
    read_csv(path, &CsvOptions::default())
}

#[track_caller]
fn assert_error(e: DataError, parts: &[&str]) {
    let text = e.to_string();
    for p in parts {
        assert!(text.contains(p), "`{p}` not in the error: {text}");
    }
}

#[test]
fn csv_without_header_plain_and_gzip() {
    let dir = TempDir::new("data-csv");
    let text = b"0,1.5,2\n3,4,0\r\n\n5,6e-1,1\n";
    for path in [dir.write("a.csv", text), write_gz(&dir, "a.csv.gz", text)] {
        let d = csv(&path).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.dim(), 2);
        assert_eq!(d.features(), &[0.0, 1.5, 3.0, 4.0, 5.0, 0.6]);
        assert_eq!(d.labels(), &[2, 0, 1]);
        assert_eq!(d.num_classes(), 3);
    }
}

#[test]
fn csv_header_detection_and_label_column() {
    let dir = TempDir::new("data-header");
    let path = dir.write("h.csv", b"label, a, b\n1, 0.5, 0.25\n0, 1, 2\n");
    let opts = CsvOptions {
        label: LabelColumn::First,
        ..CsvOptions::default()
    };
    let d = read_csv(&path, &opts).unwrap();
    assert_eq!(d.labels(), &[1, 0]);
    assert_eq!(d.features(), &[0.5, 0.25, 1.0, 2.0]);

    // Iris-style header whose first fields are numbers: detected by its names.
    let path = dir.write(
        "iris.csv",
        b"2,2,setosa,versicolor\n1.0,2.0,0\n3.0,4.0,1.0\n",
    );
    assert_eq!(csv(&path).unwrap().len(), 2);

    // An explicit header; a numeric one would otherwise be read as data.
    let path = dir.write("n.csv", b"7,7,7\n1,2,0\n");
    let present = CsvOptions {
        header: Header::Present,
        ..CsvOptions::default()
    };
    assert_eq!(read_csv(&path, &present).unwrap().len(), 1);
    assert_eq!(csv(&path).unwrap().len(), 2);

    let path = dir.write("mid.csv", b"1,0,2\n3,1,4\n");
    let mid = CsvOptions {
        label: LabelColumn::Index(1),
        header: Header::Absent,
        ..CsvOptions::default()
    };
    let d = read_csv(&path, &mid).unwrap();
    assert_eq!(
        (d.features(), d.labels()),
        (&[1.0, 2.0, 3.0, 4.0][..], &[0, 1][..])
    );
}

#[test]
fn csv_errors_name_file_line_and_expectation() {
    let dir = TempDir::new("data-bad");
    let path = dir.write("ragged.csv", b"1,2,0\n3,4,1\n5,1\n");
    assert_error(
        csv(&path).unwrap_err(),
        &["ragged.csv:3", "expected 3 fields", "found 2"],
    );

    let path = dir.write("nan.csv", b"1,2,0\n3,x4,1\n");
    assert_error(
        csv(&path).unwrap_err(),
        &["nan.csv:2", "column 2", "expected a number", "`x4`"],
    );

    for (name, label) in [("neg", "-1"), ("frac", "1.5"), ("big", "99999999999")] {
        let path = dir.write(
            &format!("{name}.csv"),
            format!("1,2,0\n3,4,{label}\n").as_bytes(),
        );
        assert_error(
            csv(&path).unwrap_err(),
            &[
                &format!("{name}.csv:2"),
                "column 3",
                "non-negative integer",
                label,
            ],
        );
    }

    let path = dir.write("empty.csv", b"\n\n");
    assert_error(csv(&path).unwrap_err(), &["empty.csv", "no data lines"]);

    let path = dir.write("one.csv", b"1\n2\n");
    assert_error(csv(&path).unwrap_err(), &["one.csv:1", "at least two"]);

    let path = dir.write("bin.csv", b"1,2,0\n\xff\xfe\x00\n");
    assert_error(csv(&path).unwrap_err(), &["bin.csv:2", "UTF-8"]);

    // A gzip file cut short.
    let gz = write_gz(&dir, "t.csv.gz", &b"1,2,0\n".repeat(1000));
    let bytes = std::fs::read(&gz).unwrap();
    let cut = dir.write("cut.csv.gz", &bytes[..bytes.len() / 2]);
    assert!(matches!(csv(&cut).unwrap_err(), DataError::Gzip { .. }));

    let missing = dir.join("nope.csv");
    assert_error(csv(&missing).unwrap_err(), &["nope.csv"]);
}

/// An IDX file: magic, big-endian dims, then `body`.
fn idx(code: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

#[test]
fn idx_reads_every_element_type_big_endian() {
    let dir = TempDir::new("data-idx");
    let u8s = dir.write("u8", &idx(0x08, &[2, 3], &[0, 1, 2, 3, 254, 255]));
    let a = read_idx(&u8s).unwrap();
    assert_eq!(a.dims, [2, 3]);
    assert_eq!(a.data, IdxData::U8(vec![0, 1, 2, 3, 254, 255]));

    let i16s = dir.write("i16", &idx(0x0B, &[2], &[0x01, 0x02, 0xFF, 0xFE]));
    assert_eq!(
        read_idx(&i16s).unwrap().data,
        IdxData::I16(vec![0x0102, -2])
    );

    let i32s = dir.write("i32", &idx(0x0C, &[1], &(-5i32).to_be_bytes()));
    assert_eq!(read_idx(&i32s).unwrap().data, IdxData::I32(vec![-5]));

    let f32s = dir.write("f32", &idx(0x0D, &[1], &1.5f32.to_be_bytes()));
    assert_eq!(read_idx(&f32s).unwrap().data, IdxData::F32(vec![1.5]));

    let f64s = write_gz(
        &dir,
        "f64.gz",
        &idx(0x0E, &[1, 1], &(-0.25f64).to_be_bytes()),
    );
    assert_eq!(read_idx(&f64s).unwrap().data, IdxData::F64(vec![-0.25]));

    let i8s = dir.write("i8", &idx(0x09, &[1], &[0x80]));
    assert_eq!(read_idx(&i8s).unwrap().data, IdxData::I8(vec![-128]));
}

#[test]
fn idx_dataset_pairs_images_and_labels() {
    let dir = TempDir::new("data-idxds");
    let pixels: Vec<u8> = (0..3 * 2 * 2).collect();
    let images = write_gz(&dir, "images.gz", &idx(0x08, &[3, 2, 2], &pixels));
    let labels = dir.write("labels", &idx(0x08, &[3], &[7, 0, 9]));
    let d = read_idx_dataset(&images, &labels).unwrap();
    assert_eq!((d.len(), d.dim()), (3, 4));
    assert_eq!(d.row(2), &[8.0, 9.0, 10.0, 11.0]);
    assert_eq!(d.labels(), &[7, 0, 9]);

    let short = dir.write("short", &idx(0x08, &[2], &[1, 2]));
    assert_error(
        read_idx_dataset(&images, &short).unwrap_err(),
        &["short", "2 labels for 3 samples"],
    );
    let float = dir.write("float", &idx(0x0D, &[1], &[0; 4]));
    let one_image = dir.write("one", &idx(0x08, &[1, 2], &[1, 2]));
    assert_error(
        read_idx_dataset(&one_image, &float).unwrap_err(),
        &["float", "integer labels"],
    );
}

#[test]
fn idx_errors_name_file_offset_and_expectation() {
    let dir = TempDir::new("data-idxbad");
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("tiny", vec![0, 0], &["at byte 2", "4-byte IDX magic"]),
        (
            "magic",
            vec![0, 1, 8, 1, 0, 0, 0, 0],
            &["at byte 1", "expected 0x00", "0x01"],
        ),
        (
            "code",
            idx(0x07, &[1], &[0]),
            &["at byte 2", "type code", "0x07"],
        ),
        (
            "nodims",
            vec![0, 0, 8, 0],
            &["at byte 3", "at least one dimension"],
        ),
        (
            "dims",
            vec![0, 0, 8, 2, 0, 0, 0, 1, 0, 0],
            &["at byte 10", "2 dimensions", "after 1"],
        ),
        (
            "short",
            idx(0x08, &[2, 3], &[1, 2, 3, 4]),
            &["at byte 16", "expected 6 bytes", "after 4"],
        ),
        (
            "long",
            idx(0x08, &[2], &[1, 2, 3]),
            &["at byte 10", "found 1 more bytes"],
        ),
        (
            "wide",
            idx(0x0C, &[2], &[0; 7]),
            &["expected 8 bytes", "after 7"],
        ),
        (
            "overflow",
            idx(0x0E, &[u32::MAX, u32::MAX, u32::MAX], &[]),
            &["overflow"],
        ),
    ];
    for (name, bytes, parts) in cases {
        let path = dir.write(name, &bytes);
        let e = read_idx(&path).unwrap_err();
        assert!(matches!(e, DataError::Binary { .. }), "{name}: {e}");
        let mut parts = parts.to_vec();
        parts.push(name);
        assert_error(e, &parts);
    }
}

fn toy(n: usize) -> Dataset {
    Dataset::new(
        (0..n * 2).map(|v| v as f32).collect(),
        (0..n as i32).collect(),
        2,
    )
    .unwrap()
}

#[test]
fn batches_cover_the_data_and_handle_the_last_partial_batch() {
    let d = toy(10);
    let kept: Vec<_> = d.batches(4).collect();
    assert_eq!(kept.iter().map(|b| b.len()).collect::<Vec<_>>(), [4, 4, 2]);
    assert_eq!(kept[2].x.shape().dims(), &[2, 2]);
    assert_eq!(kept[2].labels.as_i32().unwrap(), &[8, 9]);
    assert_eq!(d.num_batches(4, false), 3);

    let dropped = d.batches(4).drop_last(true);
    assert_eq!(dropped.len(), 2);
    assert_eq!(d.num_batches(4, true), 2);

    // A shuffled epoch visits every sample once, rows staying with their labels.
    let mut seen: Vec<i32> = Vec::new();
    for b in d.batches(3).shuffle(5) {
        let x = b.x.as_f32().unwrap();
        for (i, &l) in b.labels.as_i32().unwrap().iter().enumerate() {
            assert_eq!(x[2 * i], 2.0 * l as f32);
            seen.push(l);
        }
    }
    assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled");
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

#[test]
fn shuffles_and_splits_are_seeded() {
    let d = toy(100);
    assert_eq!(d.shuffled(3), d.shuffled(3));
    assert_ne!(d.shuffled(3), d.shuffled(4));
    let (train, test) = d.split(0.8, 11);
    assert_eq!((train.len(), test.len()), (80, 20));
    assert_eq!(d.split(0.8, 11), (train.clone(), test.clone()));
    let mut all: Vec<i32> = train
        .labels()
        .iter()
        .chain(test.labels())
        .copied()
        .collect();
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    let first: Vec<_> = d.batches(10).shuffle(1).map(|b| b.labels).collect();
    let again: Vec<_> = d.batches(10).shuffle(1).map(|b| b.labels).collect();
    assert_eq!(first, again);
}

#[test]
fn datasets_check_their_parts() {
    assert!(Dataset::new(vec![1.0; 5], vec![0, 1], 2).is_err());
    assert!(Dataset::new(vec![1.0; 4], vec![0, -1], 2).is_err());
    assert!(Dataset::new(vec![], vec![], 0).is_err());
    let d = toy(3).map_features(|v| v / 2.0);
    assert_eq!(d.row(1), &[1.0, 1.5]);
}

/// A gzip bomb: a header declaring 10 bytes of data, then megabytes more that
/// compress to almost nothing. The reader reads the declared data and a bounded
/// count of what follows, and reports the excess instead of inflating it all.
#[test]
fn idx_gzip_bomb_stops_at_the_declared_size() {
    let dir = TempDir::new("data-bomb");
    let mut bytes = idx(0x08, &[10], &(1..=10).collect::<Vec<u8>>());
    bytes.extend(std::iter::repeat_n(7u8, 8 << 20));
    let bomb = write_gz(&dir, "bomb.gz", &bytes);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 16);
    let e = read_idx(&bomb).unwrap_err();
    assert!(matches!(e, DataError::Binary { offset: 18, .. }), "{e}");
    assert_error(
        e,
        &[
            "bomb.gz",
            "end after 10 elements",
            "more than 65536 more bytes",
        ],
    );

    // The same header with exactly its data reads, compressed or not.
    let good = idx(0x08, &[10], &(1..=10).collect::<Vec<u8>>());
    for path in [write_gz(&dir, "good.gz", &good), dir.write("good", &good)] {
        let a = read_idx(&path).unwrap();
        assert_eq!(a.dims, [10]);
        assert_eq!(a.data, IdxData::U8((1..=10).collect()));
    }
    // A header that declares far more than the file holds allocates only what
    // arrives and names the shortfall.
    let liar = write_gz(&dir, "liar.gz", &idx(0x08, &[1 << 30, 4], &[5; 100]));
    assert_error(
        read_idx(&liar).unwrap_err(),
        &["liar.gz", "expected 4294967296 bytes", "ends after 100"],
    );
}

#[test]
fn csv_reader_stops_at_max_bytes() {
    let dir = TempDir::new("data-csvmax");
    let text = b"1,2,0\n3,4,1\n".repeat(100_000);
    let bomb = write_gz(&dir, "big.csv.gz", &text);
    let small = CsvOptions {
        max_bytes: 1000,
        ..CsvOptions::default()
    };
    let e = read_csv(&bomb, &small).unwrap_err();
    assert!(matches!(e, DataError::TooLarge { limit: 1000, .. }), "{e}");
    assert_error(e, &["big.csv.gz", "more than 1000 bytes"]);
    // Exactly at the limit reads; the default limit reads the whole file.
    let exact = CsvOptions {
        max_bytes: 24,
        ..CsvOptions::default()
    };
    let two = dir.write("two.csv", &text[..24]);
    assert_eq!(read_csv(&two, &exact).unwrap().labels(), &[0, 1, 0, 1]);
    assert_eq!(csv(&bomb).unwrap().len(), 200_000);
}

const TAGGED: &str = "split\ttokens\ttags\n\
train\tthe dog barks\tDET NOUN VERB\n\
train\ta dog\tDET NOUN\n\
train\tdogs bark loudly today\tNOUN VERB ADV NOUN\n\
test\tthe cat\tDET NOUN\n";

#[test]
fn tagged_sentences_read_plain_and_gzip() {
    let dir = TempDir::new("kiln-tagged");
    let plain = dir.write("pos.tsv", TAGGED.as_bytes());
    let gz = write_gz(&dir, "pos.tsv.gz", TAGGED.as_bytes());
    for path in [plain, gz] {
        let corpus = read_tagged(&path).unwrap();
        assert_eq!(corpus.split_names().collect::<Vec<_>>(), ["test", "train"]);
        let train = corpus.split("train");
        assert_eq!(train.len(), 3);
        assert_eq!(train[2].tokens, ["dogs", "bark", "loudly", "today"]);
        assert_eq!(train[2].tags, ["NOUN", "VERB", "ADV", "NOUN"]);
        assert_eq!(corpus.split("test")[0].tokens, ["the", "cat"]);
        assert!(corpus.split("dev").is_empty());
    }
}

#[test]
fn vocabularies_keep_frequent_words_and_every_tag() {
    let dir = TempDir::new("kiln-tagged");
    let corpus = read_tagged(dir.write("pos.tsv", TAGGED.as_bytes())).unwrap();
    let train = corpus.split("train");
    // "dog" appears twice, every other word once.
    let words = Vocab::of_words(train.iter().map(|s| &s.tokens[..]), 2);
    assert_eq!(words.len(), 3);
    assert_eq!(words.entry(2), Some("dog"));
    assert_eq!(words.id("dog"), 2);
    assert_eq!(words.id("the"), Vocab::UNK);
    let all = Vocab::of_words(train.iter().map(|s| &s.tokens[..]), 1);
    assert_eq!(all.len(), 2 + 8);
    assert_eq!(all.id("today"), 9);
    let tags = Vocab::of_tags(train.iter().map(|s| &s.tags[..]));
    let names: Vec<&str> = (0..tags.len() as i32)
        .map(|i| tags.entry(i).unwrap())
        .collect();
    assert_eq!(names, ["ADV", "DET", "NOUN", "VERB"]);
    assert_eq!(tags.get("PUNCT"), None);
}

#[test]
fn sequence_batches_are_time_major_padded_and_masked() {
    let dir = TempDir::new("kiln-tagged");
    let corpus = read_tagged(dir.write("pos.tsv", TAGGED.as_bytes())).unwrap();
    let train = corpus.split("train");
    let words = Vocab::of_words(train.iter().map(|s| &s.tokens[..]), 1);
    let tags = Vocab::of_tags(train.iter().map(|s| &s.tags[..]));
    let batches = sequence_batches(train, &words, &tags, 2, 3, 7).unwrap();
    assert_eq!(batches.len(), 2);
    let total: usize = batches.iter().map(|b| b.tokens_count).sum();
    assert_eq!(total, 9);
    // Grouped by length rounded up to 3: {"a dog", "the dog barks"} padded to 3
    // steps, then {"dogs bark loudly today", empty} to 6.
    let short = batches
        .iter()
        .find(|b| b.tokens.shape().dims()[0] == 3)
        .unwrap();
    assert_eq!(short.tokens.shape().dims(), &[3, 2]);
    // Time-major: element (t, b) at t * 2 + b; the shuffle decides the column.
    let id = |w: &str| words.id(w);
    let tok = short.tokens.as_i32().unwrap();
    let a = if tok[0] == id("a") { 0 } else { 1 };
    let the = 1 - a;
    let at = |v: &[i32], t: usize, b: usize| v[t * 2 + b];
    assert_eq!(
        [at(tok, 0, a), at(tok, 1, a), at(tok, 2, a)],
        [id("a"), id("dog"), Vocab::PAD]
    );
    assert_eq!(
        [at(tok, 0, the), at(tok, 1, the), at(tok, 2, the)],
        [id("the"), id("dog"), id("barks")]
    );
    let t = |g: &str| tags.id(g);
    let tg = short.tags.as_i32().unwrap();
    assert_eq!(
        [at(tg, 0, a), at(tg, 1, a), at(tg, 2, a)],
        [t("DET"), t("NOUN"), SequenceBatch::IGNORE]
    );
    assert_eq!(at(tg, 2, the), t("VERB"));
    let mask = short.mask.as_f32().unwrap();
    assert_eq!((mask[2 * 2 + a], mask[2 * 2 + the]), (0.0, 1.0));
    assert_eq!(mask.iter().sum::<f32>(), 5.0);
    let long = batches
        .iter()
        .find(|b| b.tokens.shape().dims()[0] == 6)
        .unwrap();
    assert_eq!(long.tokens_count, 4);
    assert_eq!(
        &long.mask.as_f32().unwrap()[6..],
        &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn tagged_file_errors_name_the_line() {
    let dir = TempDir::new("kiln-tagged");
    for (text, parts) in [
        ("train\ta b\tX\n", &["pos.tsv:1", "2 tokens but 1 tags"][..]),
        (
            "split\ttokens\ttags\ntrain\ta b\n",
            &["pos.tsv:2", "3 tab-separated"][..],
        ),
        ("train\ta  b\tX Y Z\n", &["pos.tsv:1", "empty token"][..]),
        ("", &["no sentences"][..]),
    ] {
        let e = read_tagged(dir.write("pos.tsv", text.as_bytes())).unwrap_err();
        assert_error(e, parts);
    }
    let corpus = read_tagged(dir.write("pos.tsv", TAGGED.as_bytes())).unwrap();
    let train = corpus.split("train");
    let words = Vocab::of_words(train.iter().map(|s| &s.tokens[..]), 1);
    let few = Vocab::of_tags(train[..1].iter().map(|s| &s.tags[..]));
    let e = sequence_batches(train, &words, &few, 2, 1, 0).unwrap_err();
    assert!(e.to_string().contains("`ADV`"), "{e}");
}
