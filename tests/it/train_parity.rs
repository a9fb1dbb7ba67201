//! The CPU training path against TensorFlow: three SGD-with-momentum steps of the whole 0.25
//! network with BatchNorm in train mode (momentum 0.99) and a new 4-way head, on a batch of 8
//! images of 67 x 75, from the fixture checkpoint. tests/fixtures/train_steps_025.npz was made by
//! tools/make_train_fixture.py (TensorFlow 2.21, FusedBatchNormV3 is_training=True,
//! MomentumOptimizer); it holds the loss of every step and every variable after the last.
//! The candle train network, the path for other devices, runs the same steps to the same
//! bounds. (It drifted 1e-2 from TensorFlow by the third step while its batch statistics were
//! f32 sums over each channel's N x H x W values; reduced in f64 its losses are within 3e-6.)

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mnv1::testing::model::arch::LOGITS_SCOPE;
use mnv1::testing::train::cpu_net::{Classifier, CpuTrainNet};
use mnv1::testing::train::head::{loss_and_correct, ClassifierHead};
use mnv1::testing::train::network::TrainNet;
use mnv1::testing::train::optimizer::{InPlace, Optimizer, OptimizerKind};
use mnv1::testing::weights::{self, RawTensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Fixture {
    images: Vec<f32>,
    labels: Vec<usize>,
    head_weights: Vec<f32>,
    head_biases: Vec<f32>,
    losses: Vec<f32>,
    settings: Vec<f64>,
    archive: crate::common::npz::NpzArchive,
}

impl Fixture {
    fn load() -> Self {
        let mut archive =
            crate::common::npz::NpzArchive::open(fixtures().join("train_steps_025.npz")).unwrap();
        let mut f32s = |name: &str| {
            archive
                .by_name(name)
                .unwrap()
                .unwrap()
                .into_vec::<f32>()
                .unwrap()
        };
        let (images, head_weights, head_biases, losses) = (
            f32s("images"),
            f32s("head_weights_init"),
            f32s("head_biases_init"),
            f32s("losses"),
        );
        let labels = archive
            .by_name("labels")
            .unwrap()
            .unwrap()
            .into_vec::<i32>()
            .unwrap()
            .into_iter()
            .map(|l| l as usize)
            .collect();
        let settings = archive
            .by_name("settings")
            .unwrap()
            .unwrap()
            .into_vec::<f64>()
            .unwrap();
        Self {
            images,
            labels,
            head_weights,
            head_biases,
            losses,
            settings,
            archive,
        }
    }

    fn after(&mut self, name: &str) -> Vec<f32> {
        self.archive
            .by_name(&format!("after/{name}"))
            .unwrap()
            .unwrap_or_else(|| panic!("fixture has no after/{name}"))
            .into_vec::<f32>()
            .unwrap()
    }

    /// Checks the losses (relative `tol.0`), the variables (absolute `tol.1`) and the moving
    /// statistics (`tol.2` relative to 1 + their size) of a run against TensorFlow's.
    fn check(
        &mut self,
        engine: &str,
        losses: &[f64],
        tensors: &std::collections::BTreeMap<String, RawTensor>,
        tol: (f64, f64, f64),
    ) {
        for (step, (&got, &want)) in losses.iter().zip(&self.losses).enumerate() {
            let rel = (got - want as f64).abs() / (want as f64).abs();
            eprintln!("{engine}: step {step}: loss {got} vs TF {want} (relative {rel:.1e})");
            assert!(
                rel < tol.0,
                "{engine}: loss of step {step}: {got} vs TF {want} (relative {rel:e})"
            );
        }
        assert_eq!(losses.len(), self.losses.len());
        let mut worst: (f64, String) = (0.0, String::new());
        let mut relative: Vec<(f64, &String)> = Vec::new();
        for (name, t) in tensors {
            let want = self.after(name);
            assert_eq!(t.data.len(), want.len(), "{engine}: {name}");
            let moving = name.contains("moving_");
            let size = want.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
            let diff = t
                .data
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs())) as f64;
            relative.push((diff / size.max(1e-12), name));
            // Moving statistics to 1e-5 relative to their size; everything else to 1e-4.
            for (a, b) in t.data.iter().zip(&want) {
                let err = (a - b).abs() as f64;
                let limit = if moving {
                    tol.2 * (1.0 + b.abs() as f64)
                } else {
                    tol.1
                };
                assert!(err < limit, "{engine}: {name}: {a} vs TF {b}");
                if err > worst.0 {
                    worst = (err, name.clone());
                }
            }
        }
        eprintln!(
            "{engine}: worst variable difference {:e} in {}",
            worst.0, worst.1
        );
        relative.sort_by(|a, b| b.0.total_cmp(&a.0));
        eprintln!(
            "{engine}: largest differences relative to the tensor's size: {:?}",
            &relative[..4]
        );
    }
}

#[test]
fn cpu_training_steps_match_tensorflow() {
    let mut fx = Fixture::load();
    let w = weights::load(&fixtures().join("mobilenet_v1_0.25_128.tgz")).unwrap();
    let (lr, momentum, bn_momentum, steps) = (
        fx.settings[0],
        fx.settings[1],
        fx.settings[2],
        fx.settings[3] as usize,
    );
    let head = Classifier::from_values(fx.head_weights.clone(), fx.head_biases.clone());
    let mut net = CpuTrainNet::from_tensors(&w.tensors, w.arch, head, bn_momentum, 2).unwrap();
    net.reserve(fx.labels.len(), 67, 75).unwrap();
    let mut optimizer = InPlace::new(OptimizerKind::Sgd { momentum }, lr);
    let mut rng = StdRng::seed_from_u64(0);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let figures = net
            .train_step(&fx.images, &fx.labels, 0.0, &mut rng, &mut optimizer)
            .unwrap();
        losses.push(figures.loss);
    }
    fx.check("cpu", &losses, &net.to_tensors(), (1e-5, 1e-4, 1e-5));
}

#[test]
fn candle_training_steps_match_tensorflow() {
    let mut fx = Fixture::load();
    let w = weights::load(&fixtures().join("mobilenet_v1_0.25_128.tgz")).unwrap();
    let (lr, momentum, bn_momentum, steps) = (
        fx.settings[0],
        fx.settings[1],
        fx.settings[2],
        fx.settings[3] as usize,
    );
    let dev = Device::Cpu;
    let mut net = TrainNet::from_tensors(&w.tensors, w.arch, bn_momentum, &dev).unwrap();
    let head =
        ClassifierHead::new(256, 4, DType::F32, &dev, &mut StdRng::seed_from_u64(0)).unwrap();
    head.weight
        .set(&Tensor::from_vec(fx.head_weights.clone(), (256, 4), &dev).unwrap())
        .unwrap();
    head.bias
        .set(&Tensor::from_vec(fx.head_biases.clone(), 4, &dev).unwrap())
        .unwrap();
    let mut vars = head.vars();
    vars.extend(net.vars());
    let mut optimizer = Optimizer::new(OptimizerKind::Sgd { momentum }, vars, lr).unwrap();
    let images = Tensor::from_vec(fx.images.clone(), (8, 67, 75, 3), &dev).unwrap();
    let labels = Tensor::from_vec(
        fx.labels.iter().map(|&l| l as u32).collect::<Vec<_>>(),
        8,
        &dev,
    )
    .unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (loss, _) = loss_and_correct(
            &head.forward(&net.forward_train(&images).unwrap()).unwrap(),
            &labels,
        )
        .unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap() as f64);
        optimizer.step(&loss.backward().unwrap()).unwrap();
    }
    let mut tensors = net.to_tensors().unwrap();
    tensors.extend(head.to_tensors().unwrap());
    assert!(tensors.contains_key(&format!("{LOGITS_SCOPE}/weights")));
    fx.check("candle", &losses, &tensors, (1e-5, 1e-4, 1e-5));
}
