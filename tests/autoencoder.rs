//! The autoencoder example, shortened to 15 epochs: the reconstruction error on
//! held-out digits falls well below that of the mean image, and the pictures it
//! writes (the image grid, the error curves) are valid PNGs of the expected size
//! that are not blank.

#[path = "../examples/autoencoder.rs"]
mod autoencoder;

#[test]
fn the_autoencoder_reconstructs_held_out_digits_and_draws_them() {
    let dir = kiln_testutil::TempDir::new("kiln-autoencoder");
    let picture = dir.join("grid.png");
    let report = autoencoder::run(&autoencoder::AutoencoderRun {
        epochs: 15,
        verbose: false,
        picture: picture.clone(),
    })
    .unwrap();
    let last = *report.test_mse.last().unwrap();
    assert!(
        last < 0.6 * report.baseline_mse,
        "test mse {last} against the mean image's {}",
        report.baseline_mse
    );
    assert!(
        report.test_mse[14] < report.test_mse[0],
        "{:?}",
        report.test_mse
    );

    let file = std::fs::File::open(&picture).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    // 10 columns and 2 rows of 8x8 images drawn 4x4, with 1-pixel lines.
    assert_eq!((info.width, info.height), (10 * 33 + 1, 2 * 33 + 1));
    let pixels = &pixels[..info.buffer_size()];
    let dark = pixels.iter().filter(|&&p| p < 40).count();
    let bright = pixels.iter().filter(|&&p| p > 200).count();
    assert!(
        dark > pixels.len() / 10 && bright > pixels.len() / 20,
        "{dark} dark, {bright} bright"
    );

    // The curves: an RGB PNG of the asked size with both colors drawn.
    let file = std::fs::File::open(picture.with_extension("curves.png")).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!((info.width, info.height), (480, 240));
    let has = |c: [u8; 3]| {
        rgb[..info.buffer_size()]
            .chunks(3)
            .filter(|p| *p == c)
            .count()
    };
    assert!(
        has([31, 119, 180]) > 100 && has([255, 127, 14]) > 100,
        "curves not drawn"
    );
}
