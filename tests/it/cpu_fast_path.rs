//! The CPU fast path (`CpuMobileNet`: NHWC kernels, fused bias + ReLU6) against the candle
//! reference network (`MobileNetV1`) on all 16 architectures, random weights, odd and non-square
//! sizes included, batches of two on one, two and four threads (whole images per thread; and
//! layer by layer, rows split, when the batch is smaller than the threads), with the kernels of
//! every instruction set the CPU supports. tests/it/parity.rs checks both against TensorFlow
//! itself.

use candle_core::{Device, Tensor};
use mnv1::testing::model::kernels::Isa;
use mnv1::testing::model::{Arch, CpuMobileNet, Head, MobileNetV1, ModelError};
use mnv1::testing::weights::random::random_weights;

const TOLERANCE: f32 = 1e-4;

/// A deterministic batch in [0,1] (values are arbitrary; a ramp with a prime stride).
fn images(n: usize, h: usize, w: usize, seed: usize) -> Vec<f32> {
    (0..n * h * w * 3)
        .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 999.0)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Logits and features of both implementations agree for a batch of two `h` x `w` images.
fn check(multiplier: f64, h: usize, w: usize) {
    let arch = Arch::new(multiplier);
    let tensors = random_weights(arch, 7);
    let reference = MobileNetV1::from_tensors(&tensors, arch, Head::Logits, &Device::Cpu).unwrap();
    let x = images(2, h, w, h + w);
    let t = Tensor::from_slice(&x, (2, h, w, 3), &Device::Cpu).unwrap();
    let want_logits: Vec<f32> = reference
        .logits(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let want_features: Vec<f32> = reference
        .features(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // The random weights must exercise the network: logits spread, features not all clamped.
    let spread = want_logits.iter().fold(f32::MIN, |a, &b| a.max(b))
        - want_logits.iter().fold(f32::MAX, |a, &b| a.min(b));
    assert!(
        spread > 0.1,
        "{multiplier} {h}x{w}: degenerate logits (spread {spread})"
    );
    // Every level; the narrower ones on 4 threads only (rows split over threads), to keep the
    // test short.
    for isa in Isa::supported() {
        let threads: &[usize] = if isa == Isa::best() { &[1, 2, 4] } else { &[4] };
        for &threads in threads {
            let fast =
                CpuMobileNet::from_tensors(&tensors, arch, Head::Logits, threads, isa).unwrap();
            let logits = fast.logits(&x, 2, h, w).unwrap();
            let features = fast.features(&x, 2, h, w).unwrap();
            let dl = max_abs_diff(&logits, &want_logits);
            let df = max_abs_diff(&features, &want_features);
            let what = format!("{multiplier} {h}x{w} {isa} threads {threads}");
            eprintln!("{what}: max |logits diff| {dl:.2e}, max |features diff| {df:.2e}");
            assert!(dl <= TOLERANCE, "{what}: logits differ by {dl}");
            assert!(df <= TOLERANCE, "{what}: features differ by {df}");
        }
    }
}

#[test]
fn fast_path_matches_reference_on_all_16_architectures() {
    for m in [0.25, 0.5, 0.75, 1.0] {
        for r in [128, 160, 192, 224] {
            check(m, r, r);
        }
    }
}

#[test]
fn fast_path_matches_reference_at_odd_and_non_square_sizes() {
    // Odd sizes put the SAME padding on both sides of the stride-2 layers; 33 reaches 1x1.
    for (m, h, w) in [
        (0.25, 33, 47),
        (0.5, 97, 131),
        (0.75, 65, 35),
        (1.0, 127, 99),
    ] {
        check(m, h, w);
    }
}

#[test]
fn fast_path_refuses_what_the_reference_refuses() {
    // The same error, variant for variant, from both implementations.
    let arch = Arch::new(0.25);
    let tensors = random_weights(arch, 1);
    let fast = CpuMobileNet::from_tensors(&tensors, arch, Head::Features, 1, Isa::best()).unwrap();
    let reference =
        MobileNetV1::from_tensors(&tensors, arch, Head::Features, &Device::Cpu).unwrap();
    let tensor = |n, h, w| Tensor::from_slice(&images(n, h, w, 0), (n, h, w, 3), &Device::Cpu);

    // No logits layer was built.
    let err = fast.logits(&images(1, 32, 32, 0), 1, 32, 32).unwrap_err();
    assert!(matches!(err, ModelError::NoLogits), "{err}");
    let err = reference.logits(&tensor(1, 32, 32).unwrap()).unwrap_err();
    assert!(matches!(err, ModelError::NoLogits), "{err}");

    // Below 32x32.
    let err = fast.features(&images(1, 31, 40, 0), 1, 31, 40).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::TooSmall {
                height: 31,
                width: 40
            }
        ),
        "{err}"
    );
    let err = reference.features(&tensor(1, 31, 40).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::TooSmall {
                height: 31,
                width: 40
            }
        ),
        "{err}"
    );

    // Too few values for the batch: the fast path's own check (a tensor cannot be built so).
    let err = fast.features(&images(1, 32, 32, 0), 2, 32, 32).unwrap_err();
    assert!(matches!(err, ModelError::Input(_)), "{err}");
    assert!(Tensor::from_slice(&images(1, 32, 32, 0), (2, 32, 32, 3), &Device::Cpu).is_err());

    // Weights of another depth multiplier.
    let wrong_fast =
        CpuMobileNet::from_tensors(&tensors, Arch::new(0.5), Head::Logits, 1, Isa::best())
            .err()
            .unwrap();
    let wrong_reference =
        MobileNetV1::from_tensors(&tensors, Arch::new(0.5), Head::Logits, &Device::Cpu)
            .err()
            .unwrap();
    for err in [wrong_fast, wrong_reference] {
        assert!(
            matches!(&err, ModelError::WrongMultiplier { found, filters: 8, wanted } if found == "0.25" && *wanted == 0.5),
            "{err}"
        );
    }
}

#[test]
fn batches_in_groups_match_one_image_at_a_time() {
    // Whole-image batches go in groups whose late layers run over all their images at once
    // (model/cpu.rs, GROUP_IMAGES): ragged last groups, thread counts that split the batch
    // unevenly, groups where only the head is shared (0.25 at 224x224, eight images) and where
    // the last stage is too, an odd size; against the same network one image at a time (the
    // path the tests above check against the reference).
    for (m, h, w, n) in [(0.25, 224, 224, 9), (1.0, 224, 224, 9), (0.5, 97, 131, 7)] {
        let arch = Arch::new(m);
        let tensors = random_weights(arch, 3);
        let x = images(n, h, w, n);
        let single =
            CpuMobileNet::from_tensors(&tensors, arch, Head::Logits, 1, Isa::best()).unwrap();
        let (want_logits, want_features): (Vec<f32>, Vec<f32>) = {
            let (mut l, mut f) = (Vec::new(), Vec::new());
            for image in x.chunks_exact(h * w * 3) {
                l.extend(single.logits(image, 1, h, w).unwrap());
                f.extend(single.features(image, 1, h, w).unwrap());
            }
            (l, f)
        };
        for threads in [1, 2, 3] {
            let fast =
                CpuMobileNet::from_tensors(&tensors, arch, Head::Logits, threads, Isa::best())
                    .unwrap();
            // The same sums in the same order (pointwise.rs: a row gives the same bits alone
            // as in a tile), so the same bits.
            let logits = fast.logits(&x, n, h, w).unwrap();
            let features = fast.features(&x, n, h, w).unwrap();
            let what = format!("{m} {h}x{w} batch {n} threads {threads}");
            assert!(same_bits(&logits, &want_logits), "{what}: logits differ");
            assert!(
                same_bits(&features, &want_features),
                "{what}: features differ"
            );
        }
    }
}

/// The network with bf16 products (`CpuMobileNet::from_tensors_bf16`), where this CPU has
/// AVX512_BF16, against the fp32 network on the TF-made fixture weights
/// (tests/fixtures/mobilenet_v1_0.25_128.tgz, tools/make_fixtures.py; random, untrained). bf16
/// keeps 8 significant bits, so every pointwise and logits product carries up to 2^-8 relative
/// error from its two rounded operands, compounded over 14 layers: on four ramp images the
/// logits moved by 5.1% of their spread and the features by 2.6% of their largest value when
/// this test was written. The bounds are twice that (10%, 6%); a wrong bf16 kernel (a swapped
/// pair, a lost k-block) moves them by the order of their whole range, and the kernel itself is
/// checked tightly in src/model/kernels/tests.rs. An image gives the same bits alone as in a
/// batch, as in fp32.
#[test]
fn bf16_network_stays_near_the_fp32_network() {
    let w =
        mnv1::testing::weights::load(&crate::common::fixture("mobilenet_v1_0.25_128.tgz")).unwrap();
    let (n, h, wd) = (4, 128, 128);
    let bf16 =
        match CpuMobileNet::from_tensors_bf16(&w.tensors, w.arch, Head::Logits, 2, Isa::best()) {
            Ok(net) => net,
            Err(ModelError::Bf16(e)) => {
                eprintln!("bf16_network_stays_near_the_fp32_network: skipped: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
    let fp32 =
        CpuMobileNet::from_tensors(&w.tensors, w.arch, Head::Logits, 2, Isa::best()).unwrap();
    let x = images(n, h, wd, 5);
    let relative = |got: &[f32], want: &[f32], scale: f32| max_abs_diff(got, want) / scale;
    let want = fp32.logits(&x, n, h, wd).unwrap();
    let got = bf16.logits(&x, n, h, wd).unwrap();
    let spread =
        want.iter().fold(f32::MIN, |a, &b| a.max(b)) - want.iter().fold(f32::MAX, |a, &b| a.min(b));
    let logits_error = relative(&got, &want, spread);
    let want_f = fp32.features(&x, n, h, wd).unwrap();
    let got_f = bf16.features(&x, n, h, wd).unwrap();
    let largest = want_f.iter().fold(0f32, |a, &b| a.max(b.abs()));
    let features_error = relative(&got_f, &want_f, largest);
    eprintln!("bf16 vs fp32: logits {logits_error:.4} of their spread, features {features_error:.4} of the largest");
    assert!(
        logits_error <= 0.10,
        "logits: {logits_error} of the spread {spread}"
    );
    assert!(
        features_error <= 0.06,
        "features: {features_error} of {largest}"
    );
    // Not fp32 in disguise: the products really are rounded.
    assert!(max_abs_diff(&got, &want) > 0.0);
    let image_len = h * wd * 3;
    let alone = bf16.logits(&x[image_len..2 * image_len], 1, h, wd).unwrap();
    assert!(same_bits(&alone, &got[want.len() / n..2 * want.len() / n]));
}
