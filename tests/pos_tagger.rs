//! The POS tagger example on the real data, shortened to three epochs: it must
//! train (the loss falls every epoch) and tag the held-out split far better than
//! chance (17 tags: about 6%; always NOUN: about 17%). The full run (`cargo run
//! --example pos_tagger`, 10 epochs) is stated in README.md.

#[path = "../examples/pos_tagger.rs"]
mod pos_tagger;

#[test]
fn the_tagger_learns_on_real_sentences() {
    let report = pos_tagger::run(&pos_tagger::TaggerRun {
        epochs: 3,
        train_sentences: None,
        seed: 1,
        verbose: false,
    })
    .unwrap();
    assert!(
        report.losses.windows(2).all(|w| w[1] < w[0]),
        "the loss did not fall: {:?}",
        report.losses
    );
    let acc = report.test_accuracy[2];
    assert!(acc > 0.62, "test accuracy {acc} after three epochs");
    println!("test accuracy after 3 epochs: {acc:.3}");
    assert!(
        (0.6..0.95).contains(&report.baseline),
        "baseline {}",
        report.baseline
    );
}
