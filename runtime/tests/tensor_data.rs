//! `TensorDataset`: named tensors of any shape and dtype sharing a leading sample
//! axis; validation, batching, seeded shuffles, splits, and the conversion from the
//! classification `Dataset`.

use kiln_ir::HostTensor;
use kiln_runtime::data::{DataError, Dataset, TensorDataset};

/// Five samples: `img` f32 [5, 2, 2] with sample i holding 10i..10i+3, `id` i32 [5]
/// = 100 + i, `mask` bool [5, 3] with (i + j) even.
fn sample_set() -> TensorDataset {
    let img: Vec<f32> = (0..5)
        .flat_map(|i| (0..4).map(move |k| (10 * i + k) as f32))
        .collect();
    let mask: Vec<bool> = (0..5)
        .flat_map(|i| (0..3).map(move |j| (i + j) % 2 == 0))
        .collect();
    TensorDataset::new(vec![
        ("img", HostTensor::from_f32([5, 2, 2], img).unwrap()),
        (
            "id",
            HostTensor::from_i32([5], (100..105).collect()).unwrap(),
        ),
        ("mask", HostTensor::from_bool([5, 3], mask).unwrap()),
    ])
    .unwrap()
}

/// Checks that every row of a batch belongs to the same sample, returning the ids.
#[track_caller]
fn aligned_ids(batch: &kiln_runtime::data::TensorBatch) -> Vec<i32> {
    let ids = batch["id"].as_i32().unwrap().to_vec();
    let img = batch["img"].as_f32().unwrap();
    let mask = batch["mask"].as_bool().unwrap();
    for (r, &id) in ids.iter().enumerate() {
        let i = (id - 100) as usize;
        let want: Vec<f32> = (0..4).map(|k| (10 * i + k) as f32).collect();
        assert_eq!(&img[r * 4..r * 4 + 4], &want[..], "img row of sample {i}");
        let want: Vec<bool> = (0..3).map(|j| (i + j).is_multiple_of(2)).collect();
        assert_eq!(&mask[r * 3..r * 3 + 3], &want[..], "mask row of sample {i}");
    }
    ids
}

#[track_caller]
fn invalid(r: Result<TensorDataset, DataError>, parts: &[&str]) {
    let e = r.expect_err("must be rejected");
    assert!(matches!(e, DataError::Invalid(_)), "{e:?}");
    let text = e.to_string();
    for p in parts {
        assert!(text.contains(p), "`{p}` not in: {text}");
    }
}

#[test]
fn validation_errors_name_the_problem() {
    let a = HostTensor::from_f32([4, 2], vec![1.0; 8]).unwrap();
    let b = HostTensor::from_f32([3], vec![1.0, 2.0, 3.0]).unwrap();
    invalid(
        TensorDataset::new(vec![("x", a.clone()), ("y", b)]),
        &[
            "`y` has 3 samples",
            "`x` has 4",
            "[4,2]",
            "leading dimensions",
        ],
    );
    invalid(
        TensorDataset::new(Vec::<(&str, HostTensor)>::new()),
        &["at least one"],
    );
    invalid(
        TensorDataset::new(vec![("x", HostTensor::from_f32([0, 3], vec![]).unwrap())]),
        &["empty"],
    );
    invalid(
        TensorDataset::new(vec![("s", HostTensor::scalar(kiln_ir::DType::F32, 2.0))]),
        &["`s` is a scalar"],
    );
    invalid(
        TensorDataset::new(vec![("x", a.clone()), ("x", a)]),
        &["`x` is given twice"],
    );
}

#[test]
fn batches_keep_samples_aligned_across_names_and_dtypes() {
    let data = sample_set();
    assert_eq!(data.len(), 5);
    assert_eq!(data.names().collect::<Vec<_>>(), ["img", "id", "mask"]);
    // In order, the last batch partial.
    let batches: Vec<_> = data.batches(2).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(data.num_batches(2, false), 3);
    assert_eq!(batches[2].len(), 1);
    assert_eq!(batches[0]["img"].shape().dims(), &[2, 2, 2]);
    assert_eq!(batches[2]["mask"].shape().dims(), &[1, 3]);
    let ids: Vec<i32> = batches.iter().flat_map(aligned_ids).collect();
    assert_eq!(ids, [100, 101, 102, 103, 104]);
    // Shuffled with drop_last: two full batches, rows still aligned, a seeded order.
    let shuffled: Vec<_> = data.batches(2).shuffle(9).drop_last(true).collect();
    assert_eq!(shuffled.len(), 2);
    assert_eq!(data.num_batches(2, true), 2);
    let ids: Vec<i32> = shuffled.iter().flat_map(aligned_ids).collect();
    let again: Vec<i32> = data
        .batches(2)
        .shuffle(9)
        .drop_last(true)
        .flat_map(|b| aligned_ids(&b))
        .collect();
    assert_eq!(ids, again);
    let mut all: Vec<i32> = data
        .batches(3)
        .shuffle(9)
        .flat_map(|b| aligned_ids(&b))
        .collect();
    assert_ne!(
        all,
        [100, 101, 102, 103, 104],
        "seed 9 leaves the order unchanged"
    );
    all.sort();
    assert_eq!(all, [100, 101, 102, 103, 104]);
    // The names are the argument list of a step.
    let inputs = shuffled[0].inputs();
    assert_eq!(
        inputs.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["img", "id", "mask"]
    );
    assert!(shuffled[0].get("nope").is_none());
}

#[test]
fn split_and_select_partition_the_samples() {
    let data = sample_set();
    let (train, test) = data.split(0.6, 4);
    assert_eq!((train.len(), test.len()), (3, 2));
    let ids =
        |d: &TensorDataset| -> Vec<i32> { d.batches(10).flat_map(|b| aligned_ids(&b)).collect() };
    let mut both = ids(&train);
    both.extend(ids(&test));
    both.sort();
    assert_eq!(both, [100, 101, 102, 103, 104]);
    assert_eq!(ids(&data.select(&[4, 0])), [104, 100]);
    assert_eq!(data.split(0.6, 4), data.split(0.6, 4));
    let (all, none) = data.split(1.0, 4);
    assert_eq!((all.len(), none.len()), (5, 0));
    assert!(none.is_empty());
    assert_eq!(none.batches(2).count(), 0);
}

#[test]
fn from_dataset_matches_its_batches_and_split() {
    let features: Vec<f32> = (0..21).map(|v| v as f32 * 0.5 - 3.0).collect();
    let data = Dataset::new(features, vec![0, 2, 1, 1, 0, 2, 1], 3).unwrap();
    let tensors = TensorDataset::from(&data);
    assert_eq!(tensors.len(), 7);
    assert_eq!(tensors.get("x").unwrap().shape().dims(), &[7, 3]);
    assert_eq!(tensors.get("labels").unwrap().shape().dims(), &[7]);
    let old: Vec<_> = data.batches(3).shuffle(5).drop_last(true).collect();
    let new: Vec<_> = tensors.batches(3).shuffle(5).drop_last(true).collect();
    assert_eq!(old.len(), 2);
    assert_eq!(new.len(), 2);
    for (o, n) in old.iter().zip(&new) {
        assert_eq!(o.x, n["x"]);
        assert_eq!(o.labels, n["labels"]);
    }
    let (a, b) = data.split(0.5, 2);
    let (ta, tb) = tensors.split(0.5, 2);
    assert_eq!(TensorDataset::from(a), ta);
    assert_eq!(TensorDataset::from(&b), tb);
}
