//! End to end on real data: the digits MLP trained with `Fit` from the shipped CSV
//! file, evaluated, checkpointed and restored.

use kiln::checkpoint::{CheckpointError, Mismatch};
use kiln::data::{CsvOptions, read_csv};
use kiln::prelude::*;
use kiln::{EvalError, FitError, LabelError};
use kiln_testutil::TempDir;

const BATCH: usize = 32;

fn mlp(g: &GraphBuilder, x: &Tensor, hidden: usize) -> Tensor {
    let mut rng = Rng::seed(3);
    let fc1 = nn::Linear::new(g, "fc1", 64, hidden, &mut rng);
    let fc2 = nn::Linear::new(g, "fc2", hidden, 64, &mut rng);
    let fc3 = nn::Linear::new(g, "fc3", 64, 10, &mut rng);
    fc3.forward(&fc2.forward(&fc1.forward(x).relu()).relu())
}

fn step(hidden: usize) -> TrainStep {
    let g = GraphBuilder::new("digits");
    let x = g.input("x", DType::F32, [BATCH, 64]);
    let labels = g.input("labels", DType::I32, [BATCH]);
    let logits = mlp(&g, &x, hidden);
    let loss = loss::cross_entropy(&logits, &labels);
    TrainStep::with_outputs(&loss, &Adam::new(3e-3), &[("logits", &logits)]).unwrap()
}

fn evaluator() -> Evaluator<'static> {
    evaluator_with(128)
}

fn evaluator_with(hidden: usize) -> Evaluator<'static> {
    Evaluator::new(move |batch| {
        let g = GraphBuilder::new("digits_eval");
        let x = g.input("x", DType::F32, [batch, 64]);
        let logits = mlp(&g, &x, hidden);
        g.build(&[("logits", &logits)]).map(|m| m.graph)
    })
}

fn digits() -> (Dataset, Dataset) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz");
    let data = read_csv(path, &CsvOptions::default())
        .unwrap()
        .map_features(|p| p / 16.0);
    assert_eq!((data.len(), data.dim(), data.num_classes()), (1797, 64, 10));
    data.split(0.8, 3)
}

#[test]
fn digits_mlp_reaches_95_percent_and_survives_a_checkpoint() {
    let (train, test) = digits();
    let mut step = step(128);
    let mut eval = evaluator().max_batch(256); // 359 = 256 + 103: two specializations
    let history = Fit::new(20, BATCH)
        .seed(3)
        .progress(Progress::Silent)
        .run(&mut step, &train, Some((&mut eval, &test)))
        .unwrap();
    assert_eq!(history.len(), 20);
    let last = history.last().unwrap();
    let result = last.eval.unwrap();
    assert_eq!(result.samples, test.len());
    println!(
        "digits test accuracy after 20 epochs: {:.4}",
        result.accuracy
    );
    assert!(result.accuracy >= 0.95, "test accuracy {}", result.accuracy);
    assert!(last.loss < history[0].loss / 5.0, "{history:?}");
    assert!(last.train_accuracy.unwrap() > 0.97, "{last:?}");
    assert!(last.samples_per_sec > 0.0);

    // Save, restore into a fresh step: bit-identical values, the same accuracy.
    let dir = TempDir::new("digits-ok");
    let path = dir.join("digits.safetensors");
    step.save_checkpoint(&path).unwrap();
    let mut restored = self::step(128);
    assert_ne!(restored.params(), step.params());
    restored.load_checkpoint(&path).unwrap();
    for (name, value) in step.params() {
        let got = restored.params().get(name).unwrap();
        let (a, b) = (value.as_f32().unwrap(), got.as_f32().unwrap());
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name}"
        );
    }
    assert_eq!(eval.evaluate(restored.params(), &test).unwrap(), result);

    // The optimizer state came along: both continue identically.
    let batch = train.batches(BATCH).next().unwrap();
    let inputs = [("x", &batch.x), ("labels", &batch.labels)];
    assert_eq!(
        step.run(&inputs).unwrap().loss,
        restored.run(&inputs).unwrap().loss
    );
    assert_eq!(step.params(), restored.params());
}

#[test]
fn loading_a_checkpoint_of_another_model_lists_every_mismatch() {
    let dir = TempDir::new("digits-mismatch");
    let path = dir.join("digits.safetensors");
    step(32).save_checkpoint(&path).unwrap();
    let mut target = step(128);
    let before = target.params().clone();
    let e = target.load_checkpoint(&path).unwrap_err();
    let CheckpointError::Mismatch { mismatches, .. } = &e else {
        panic!("{e:?}");
    };
    // fc1.weight, fc1.bias, fc2.weight and their two Adam moments each.
    assert_eq!(mismatches.len(), 9, "{e}");
    assert!(
        mismatches
            .iter()
            .all(|m| matches!(m, Mismatch::Type { .. }))
    );
    let text = e.to_string();
    assert!(
        text.contains("`fc1.weight` is f32[128,64] in the model but f32[32,64] in the checkpoint"),
        "{text}"
    );
    assert_eq!(target.params(), &before, "nothing was loaded");

    // A truncated file.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let e = target.load_checkpoint(&path).unwrap_err();
    assert!(matches!(e, CheckpointError::Format { .. }), "{e:?}");
}

#[test]
fn fit_refuses_a_training_set_smaller_than_a_batch() {
    let (_, test) = digits();
    let tiny = test.select(&[0, 1, 2]);
    let e = Fit::new(1, BATCH)
        .progress(Progress::Silent)
        .run(&mut step(16), &tiny, None)
        .unwrap_err();
    assert!(e.to_string().contains("fewer than one batch"), "{e}");
}

/// `data` with the label of sample `at` replaced by `label`.
fn relabeled(data: &Dataset, at: usize, label: i32) -> Dataset {
    let mut labels = data.labels().to_vec();
    labels[at] = label;
    Dataset::new(data.features().to_vec(), labels, data.dim()).unwrap()
}

/// Issue 18, finding 3: a label out of range is the same `LabelError` in evaluation
/// (it gave a NaN loss and exit 0) as in training, before any step runs.
#[test]
fn out_of_range_labels_are_rejected_in_training_and_evaluation() {
    let (train, test) = digits();
    let bad_test = relabeled(&test, 300, 200);
    let step = self::step(16);
    let e = evaluator_with(16)
        .max_batch(256)
        .evaluate(step.params(), &bad_test)
        .unwrap_err();
    let want = LabelError {
        sample: 300,
        label: 200,
        classes: 10,
    };
    assert!(matches!(&e, EvalError::Label(l) if *l == want), "{e}");
    assert_eq!(
        e.to_string(),
        "label 200 of sample 300 is out of range [0, 10): labels are class indices"
    );

    let fit = Fit::new(1, BATCH).progress(Progress::Silent);
    let mut step = self::step(16);
    let before = step.params().clone();
    let mut eval = evaluator_with(16);
    let e = fit
        .run(&mut step, &train, Some((&mut eval, &bad_test)))
        .unwrap_err();
    assert!(
        matches!(&e, FitError::Label { set: "evaluation", source } if *source == want),
        "{e}"
    );
    assert_eq!(step.params(), &before, "no step ran");
    let e = fit
        .run(&mut step, &relabeled(&train, 7, 10), None)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the training set: label 10 of sample 7 is out of range [0, 10): labels are class indices"
    );
}
