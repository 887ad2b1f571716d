//! The digits CNN example, shortened to 4 epochs: batch normalization, dropout
//! and pooling train on real images, and evaluation mode classifies the held-out
//! split well (the full run, `cargo run --example digits_cnn`, reaches 0.997).

#[path = "../examples/digits_cnn.rs"]
mod digits_cnn;

#[test]
fn the_cnn_learns_the_digits() {
    let acc = digits_cnn::run(&digits_cnn::CnnRun {
        epochs: 4,
        verbose: false,
    })
    .unwrap();
    assert!(acc[3] > 0.95, "test accuracy {acc:?}");
    assert!(acc[3] > acc[0] - 0.01, "no progress: {acc:?}");
}
