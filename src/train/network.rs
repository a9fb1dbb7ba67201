//! MobileNet V1 in train mode: every conv filter and BatchNorm gamma/beta a candle `Var`, BatchNorm
//! unfolded so that it can normalise with batch statistics and update its moving averages (the
//! TF-Hub modules' `trainable=True` / tags {"train"}). Inference stays in `crate::model`, which
//! folds BatchNorm away.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};

use super::TrainError;
use crate::model::arch::{Arch, Layer, LayerKind, BN_EPSILON};
use crate::model::mobilenet::depthwise_by_taps;
use crate::model::padding::same_padding;
use crate::model::params::train_params;
use crate::weights::RawTensor;

/// BatchNorm with TensorFlow's semantics: `moving = momentum * moving + (1 - momentum) * batch`
/// (PyTorch's and candle-nn's `momentum` is 1 minus this). Training normalises with the biased
/// batch variance and feeds the Bessel-corrected one (x n/(n-1)) into the moving variance, as
/// TF's FusedBatchNorm (what slim's batch_norm runs) does.
pub(crate) struct BatchNorm {
    pub(crate) gamma: Var,
    pub(crate) beta: Var,
    pub(crate) moving_mean: Tensor,
    pub(crate) moving_variance: Tensor,
    /// TF decay of the moving averages, e.g. 0.99 (the modules' default) or 0.997.
    pub(crate) momentum: f64,
}

impl BatchNorm {
    /// Normalises `x` [N, C, H, W] with its own statistics and updates the moving averages.
    pub(crate) fn forward_train(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let count = n * h * w;
        let dtype = x.dtype();
        let x = &x.to_dtype(stats_dtype(x.device()))?;
        let mean = x.mean_keepdim((0, 2, 3))?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
        let y = centered
            .broadcast_div(&(&var + BN_EPSILON)?.sqrt()?)?
            .to_dtype(dtype)?;
        let (mean, var) = (mean.to_dtype(dtype)?, var.to_dtype(dtype)?);
        let y = y.broadcast_mul(&self.gamma.as_tensor().reshape((1, c, 1, 1))?)?;
        let y = y.broadcast_add(&self.beta.as_tensor().reshape((1, c, 1, 1))?)?;
        // A single value per channel has no unbiased variance; TF would divide by zero.
        let correction = if count > 1 {
            count as f64 / (count - 1) as f64
        } else {
            1.0
        };
        let m = self.momentum;
        let batch_mean = mean.detach().flatten_all()?;
        let batch_var = (var.detach().flatten_all()? * correction)?;
        self.moving_mean = ((&self.moving_mean * m)? + (batch_mean * (1.0 - m))?)?;
        self.moving_variance = ((&self.moving_variance * m)? + (batch_var * (1.0 - m))?)?;
        Ok(y)
    }

    /// Inference mode: the moving statistics, nothing updated.
    pub(crate) fn forward_eval(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let c = x.dim(1)?;
        let shape = (1, c, 1, 1);
        let scale = (self.gamma.as_tensor() / (&self.moving_variance + BN_EPSILON)?.sqrt()?)?;
        let y = x
            .broadcast_sub(&self.moving_mean.reshape(shape)?)?
            .broadcast_mul(&scale.reshape(shape)?)?;
        y.broadcast_add(&self.beta.as_tensor().reshape(shape)?)
    }
}

/// The type batch statistics are reduced in: f64 where the device has it, so that the sums over
/// a batch's N x H x W values (25 088 per channel at 112 x 112, batch 2) and their gradients
/// lose no digits (in f32 the trainer drifted 1e-2 from TensorFlow's steps by the third); Metal
/// has no f64.
fn stats_dtype(device: &Device) -> DType {
    if device.is_metal() {
        DType::F32
    } else {
        DType::F64
    }
}

/// One conv + BatchNorm + ReLU6 layer with trainable parameters.
struct TrainLayer {
    spec: Layer,
    /// Conv: OIHW. Depthwise: [9, C] (one row per tap). Pointwise: [Cout, Cin].
    weight: Var,
    bn: BatchNorm,
    /// The source had folded this layer's BatchNorm away (filter + bias) and `calibrate` has not
    /// yet given it statistics.
    folded: bool,
}

/// The backbone (Conv2d_0 .. Conv2d_13_pointwise, pooled) in train mode.
pub struct TrainNet {
    layers: Vec<TrainLayer>,
}

impl TrainNet {
    /// Builds the network from canonical tensors (`params::train_params`: a folded layer's
    /// BatchNorm computes exactly the folded layer until `calibrate`).
    pub fn from_tensors(
        w: &BTreeMap<String, RawTensor>,
        arch: Arch,
        bn_momentum: f64,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let mut layers = Vec::new();
        for spec in arch.layers() {
            let c = spec.out_channels;
            let p = train_params(w, &spec)?;
            let vector = |v: &[f32]| Tensor::from_slice(v, c, device);
            let hwio = Tensor::from_slice(&p.filter, spec.weight_shape(), device)?;
            let weight = match spec.kind {
                LayerKind::Conv => hwio.permute((3, 2, 0, 1))?.contiguous()?,
                LayerKind::Depthwise => hwio.reshape((9, c))?,
                LayerKind::Pointwise => hwio.reshape((spec.in_channels, c))?.t()?.contiguous()?,
            };
            let (gamma, beta, mean, var, folded) = (
                vector(&p.gamma)?,
                vector(&p.beta)?,
                vector(&p.moving_mean)?,
                vector(&p.moving_variance)?,
                p.folded,
            );
            let bn = BatchNorm {
                gamma: Var::from_tensor(&gamma)?,
                beta: Var::from_tensor(&beta)?,
                moving_mean: mean,
                moving_variance: var,
                momentum: bn_momentum,
            };
            layers.push(TrainLayer {
                spec,
                weight: Var::from_tensor(&weight)?,
                bn,
                folded,
            });
        }
        Ok(Self { layers })
    }

    /// Whether some layer came with its BatchNorm folded away and still needs `calibrate`.
    pub(crate) fn needs_calibration(&self) -> bool {
        self.layers.iter().any(|l| l.folded)
    }

    /// Gives each folded layer the statistics of its convolution's output on `images` (NHWC,
    /// [0,1]): moving mean `m` and variance `v` of those outputs, gamma `sqrt(v + eps)` and beta
    /// `bias + m`. Inference mode still computes exactly the folded layer, `conv + bias`; train
    /// mode, which normalises by batch statistics, now starts close to it too. (With gamma 1 and
    /// variance 1 - eps it would divide each channel by its batch spread, a different network,
    /// and fine-tuning from a .tflite lost its accuracy in the first steps.)
    pub(crate) fn calibrate(&mut self, images: &Tensor) -> candle_core::Result<()> {
        let mut x = graph_input(images)?;
        for layer in &mut self.layers {
            let y = conv(&layer.spec, layer.weight.as_tensor(), &x)?;
            if layer.folded {
                let c = layer.spec.out_channels;
                let mean = y.mean_keepdim((0, 2, 3))?;
                let var = y.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
                let (mean, var) = (mean.reshape(c)?, var.reshape(c)?);
                let bias = layer.bn.beta.as_tensor().clone();
                layer.bn.gamma.set(&(&var + BN_EPSILON)?.sqrt()?)?;
                layer.bn.beta.set(&(bias + &mean)?)?;
                layer.bn.moving_mean = mean;
                layer.bn.moving_variance = var;
                layer.folded = false;
            }
            x = layer.bn.forward_eval(&y)?.clamp(0f32, 6f32)?;
        }
        Ok(())
    }

    /// Every trainable parameter: filters, gammas and betas (not the moving statistics).
    pub fn vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|l| [l.weight.clone(), l.bn.gamma.clone(), l.bn.beta.clone()])
            .collect()
    }

    /// Pooled features [N, C] of NHWC images in [0,1]; BatchNorm on batch statistics, moving
    /// averages updated.
    pub fn forward_train(&mut self, images: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = graph_input(images)?;
        for layer in &mut self.layers {
            x = layer
                .bn
                .forward_train(&conv(&layer.spec, layer.weight.as_tensor(), &x)?)?
                .clamp(0f32, 6f32)?;
        }
        x.mean((2, 3))
    }

    /// Pooled features in inference mode (moving statistics).
    pub(crate) fn forward_eval(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = graph_input(images)?;
        for layer in &self.layers {
            x = layer
                .bn
                .forward_eval(&conv(&layer.spec, layer.weight.as_tensor(), &x)?)?
                .clamp(0f32, 6f32)?;
        }
        x.mean((2, 3))
    }

    /// The backbone's canonical tensors (TF layouts, BatchNorm unfolded), ready for safetensors.
    pub fn to_tensors(&self) -> candle_core::Result<BTreeMap<String, RawTensor>> {
        let mut out = BTreeMap::new();
        for l in &self.layers {
            let w = l.weight.as_tensor();
            let hwio = match l.spec.kind {
                LayerKind::Conv => w.permute((2, 3, 1, 0))?,
                LayerKind::Depthwise => w.clone(),
                LayerKind::Pointwise => w.t()?,
            };
            out.insert(l.spec.weight_name(), raw(&hwio, l.spec.weight_shape())?);
            let c = vec![l.spec.out_channels];
            out.insert(
                l.spec.bn_name("gamma"),
                raw(l.bn.gamma.as_tensor(), c.clone())?,
            );
            out.insert(
                l.spec.bn_name("beta"),
                raw(l.bn.beta.as_tensor(), c.clone())?,
            );
            out.insert(
                l.spec.bn_name("moving_mean"),
                raw(&l.bn.moving_mean, c.clone())?,
            );
            out.insert(
                l.spec.bn_name("moving_variance"),
                raw(&l.bn.moving_variance, c)?,
            );
        }
        Ok(out)
    }
}

pub(crate) fn raw(t: &Tensor, shape: Vec<usize>) -> candle_core::Result<RawTensor> {
    Ok(RawTensor::new(
        shape,
        t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
    ))
}

/// NHWC [0,1] -> NCHW [-1,1], as the hub signature and graph do.
fn graph_input(images: &Tensor) -> candle_core::Result<Tensor> {
    images
        .to_dtype(DType::F32)?
        .affine(2.0, -1.0)?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

/// The convolution of one layer, TF SAME padding; no bias (BatchNorm follows).
fn conv(spec: &Layer, weight: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    match spec.kind {
        LayerKind::Conv => {
            let (_, _, h, w) = x.dims4()?;
            let (_, (top, bottom)) = same_padding(h, 3, spec.stride);
            let (_, (left, right)) = same_padding(w, 3, spec.stride);
            let padded = x
                .pad_with_zeros(2, top, bottom)?
                .pad_with_zeros(3, left, right)?;
            padded.conv2d(weight, 0, spec.stride, 1, 1)
        }
        LayerKind::Depthwise => {
            let c = spec.out_channels;
            let taps = (0..9)
                .map(|t| weight.get(t)?.reshape((1, c, 1, 1)))
                .collect::<candle_core::Result<Vec<_>>>()?;
            depthwise_by_taps(x, &taps, spec.stride)
        }
        LayerKind::Pointwise => {
            let (n, c, h, w) = x.dims4()?;
            weight
                .broadcast_matmul(&x.reshape((n, c, h * w))?)?
                .reshape((n, (), h, w))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_mode_batch_norm_uses_batch_statistics_and_tf_momentum() {
        // One channel, a batch of 2 images of 1x2 pixels: values 1, 2, 3, 6 (n = 4).
        // batch mean = 3; biased variance = (4 + 1 + 0 + 9) / 4 = 3.5; unbiased = 14 / 3.
        // y = (x - 3) / sqrt(3.5 + 0.001) * gamma + beta, with gamma = 2, beta = 0.5, sqrt = 1.871096:
        //   x=1: -2 / 1.871096 * 2 + 0.5 = -1.637785; x=2: -0.568892; x=3: 0.5; x=6: 3.706677.
        // Moving averages with TF momentum 0.9 from mean 0.5, variance 2:
        //   mean = 0.9 * 0.5 + 0.1 * 3 = 0.75; variance = 0.9 * 2 + 0.1 * 14/3 = 2.266667.
        // (TensorFlow 2.21's tf.compat.v1.nn.fused_batch_norm on 1,2,3,6 reports batch variance
        // 4.666667, i.e. the unbiased one, and normalises by the biased 3.5.)
        let dev = Device::Cpu;
        let mut bn = BatchNorm {
            gamma: Var::from_slice(&[2f32], 1, &dev).unwrap(),
            beta: Var::from_slice(&[0.5f32], 1, &dev).unwrap(),
            moving_mean: Tensor::new(&[0.5f32], &dev).unwrap(),
            moving_variance: Tensor::new(&[2f32], &dev).unwrap(),
            momentum: 0.9,
        };
        let x = Tensor::new(&[1f32, 2., 3., 6.], &dev)
            .unwrap()
            .reshape((2, 1, 1, 2))
            .unwrap();
        let y: Vec<f32> = bn
            .forward_train(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let expected = [-1.637785, -0.568892, 0.5, 3.706677];
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{y:?} vs {expected:?}");
        }
        let mean: Vec<f32> = bn.moving_mean.to_vec1().unwrap();
        let var: Vec<f32> = bn.moving_variance.to_vec1().unwrap();
        assert!((mean[0] - 0.75).abs() < 1e-6, "{mean:?}");
        assert!((var[0] - 2.266667).abs() < 1e-5, "{var:?}");

        // The same with the modules' settable 0.997: mean = 0.997 * 0.5 + 0.003 * 3 = 0.5075.
        bn.moving_mean = Tensor::new(&[0.5f32], &dev).unwrap();
        bn.momentum = 0.997;
        bn.forward_train(&x).unwrap();
        let mean: Vec<f32> = bn.moving_mean.to_vec1().unwrap();
        assert!((mean[0] - 0.5075).abs() < 1e-6, "{mean:?}");

        // Inference mode uses the moving statistics: (6 - 0.5075) / sqrt(var + 0.001) * 2 + 0.5.
        let v = bn.moving_variance.to_vec1::<f32>().unwrap()[0] as f64;
        let y6 = bn
            .forward_eval(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[3] as f64;
        assert!((y6 - ((6.0 - 0.5075) / (v + 0.001).sqrt() * 2.0 + 0.5)).abs() < 1e-4);
    }

    #[test]
    fn unfolded_train_net_matches_the_inference_network() {
        // Inference mode of the unfolded network equals the folded one, from a checkpoint
        // (real BatchNorm) and from .tflite-style folded layers (gamma=1, beta=bias, var=1-eps).
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mobilenet_v1_0.25_128.tgz");
        let w = crate::weights::load(&fixture).unwrap();
        let mut folded = w.tensors.clone();
        for layer in w.arch.layers() {
            let leaf = |name: &str| &w.tensors[&layer.bn_name(name)].data;
            let (g, b, mean, var) = (
                leaf("gamma"),
                leaf("beta"),
                leaf("moving_mean"),
                leaf("moving_variance"),
            );
            let c = layer.out_channels;
            let scale: Vec<f64> = (0..c)
                .map(|i| g[i] as f64 / (var[i] as f64 + BN_EPSILON).sqrt())
                .collect();
            // The output channel is the last axis of all three filter layouts.
            let filter = folded.get_mut(&layer.weight_name()).unwrap();
            filter
                .data
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = (*v as f64 * scale[i % c]) as f32);
            let bias: Vec<f32> = (0..c)
                .map(|i| (b[i] as f64 - mean[i] as f64 * scale[i]) as f32)
                .collect();
            folded.insert(layer.bias_name(), RawTensor::new(vec![c], bias));
            for name in ["gamma", "beta", "moving_mean", "moving_variance"] {
                folded.remove(&layer.bn_name(name));
            }
        }

        let dev = Device::Cpu;
        let x = Tensor::rand(0f32, 1f32, (2, 64, 72, 3), &dev).unwrap();
        let reference = crate::model::MobileNetV1::from_tensors(
            &w.tensors,
            w.arch,
            crate::model::Head::Features,
            &dev,
        )
        .unwrap();
        let want: Vec<Vec<f32>> = reference.features(&x).unwrap().to_vec2().unwrap();
        for tensors in [&w.tensors, &folded] {
            let net = TrainNet::from_tensors(tensors, w.arch, 0.99, &dev).unwrap();
            let got: Vec<Vec<f32>> = net.forward_eval(&x).unwrap().to_vec2().unwrap();
            for (a, b) in got.iter().flatten().zip(want.iter().flatten()) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
        // Calibrated on a batch, the folded network computes the same in inference mode, and in
        // train mode on that batch too (its batch statistics are the calibration's).
        let mut net = TrainNet::from_tensors(&folded, w.arch, 0.99, &dev).unwrap();
        assert!(net.needs_calibration());
        net.calibrate(&x).unwrap();
        assert!(!net.needs_calibration());
        let eval: Vec<Vec<f32>> = net.forward_eval(&x).unwrap().to_vec2().unwrap();
        let train: Vec<Vec<f32>> = net.forward_train(&x).unwrap().to_vec2().unwrap();
        for ((a, b), t) in eval
            .iter()
            .flatten()
            .zip(want.iter().flatten())
            .zip(train.iter().flatten())
        {
            assert!((a - b).abs() < 1e-4, "eval {a} vs {b}");
            assert!((t - b).abs() < 1e-3, "train {t} vs {b}");
        }

        // Exported tensors round-trip: same names and values as the checkpoint's.
        let net = TrainNet::from_tensors(&w.tensors, w.arch, 0.99, &dev).unwrap();
        for (name, t) in net.to_tensors().unwrap() {
            assert_eq!(w.tensors[&name], t, "{name}");
        }
    }
}
