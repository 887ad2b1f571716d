//! The GAN example, shortened to 60 epochs: alternating discriminator and
//! generator steps over their own parameters produce samples that the digits CNN
//! (trained in the same run) reads as digits of several classes; the picture of
//! samples is a valid, non-blank PNG. (The full run, `cargo run --example gan`,
//! reaches all 10 classes with mean confidence 0.845.)

#[path = "../examples/gan.rs"]
mod gan;

#[test]
fn the_gan_generates_digits_the_cnn_recognizes() {
    let dir = kiln_testutil::TempDir::new("kiln-gan");
    let picture = dir.join("gan.png");
    let report = gan::run(&gan::GanRun {
        epochs: 60,
        verbose: false,
        picture: picture.clone(),
    })
    .unwrap();
    println!(
        "{} classes, confidence {:.3}",
        report.classes, report.confidence
    );
    assert!(report.classes >= 6, "{} classes", report.classes);
    assert!(report.confidence > 0.6, "confidence {}", report.confidence);
    let file = std::fs::File::open(&picture).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (8 * 33 + 1, 8 * 33 + 1));
    let pixels = &pixels[..info.buffer_size()];
    assert!(pixels.iter().filter(|&&p| p > 150).count() > pixels.len() / 20);
    // The pictures during training: after epochs 15, 30 and 45.
    for epoch in [15, 30, 45] {
        assert!(
            dir.join(format!("gan_epoch{epoch}.png")).exists(),
            "epoch {epoch}"
        );
    }
}
