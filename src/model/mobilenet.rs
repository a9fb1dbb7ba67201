//! MobileNet V1 on candle for inference: every conv + BatchNorm pair folded into one filter and
//! bias, ReLU6, TF SAME padding per layer, global mean pooling, optional 1001-way logits.
//! Layout inside the network is NCHW (candle's conv layout); callers pass NHWC images in [0,1].

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use super::arch::{Arch, Head, LayerKind};
use super::backbone::Backbone;
use super::cpu::Profile;
use super::padding::same_padding;
use super::params::{check_multiplier, fold, logits_layer, MIN_INPUT};
use super::ModelError;
use crate::weights::RawTensor;

/// One conv + BN + ReLU6 layer with the BN folded into `weight` and `bias`.
struct FoldedLayer {
    kind: LayerKind,
    stride: usize,
    /// Conv: OIHW. Depthwise: nine taps, each [1, C, 1, 1]. Pointwise: [Cout, Cin].
    weight: Vec<Tensor>,
    /// [1, C, 1, 1]
    bias: Tensor,
}

/// The network with folded BatchNorm, ready for inference on one device.
pub struct MobileNetV1 {
    arch: Arch,
    /// What the `Backbone` forward pass returns.
    head: Head,
    device: Device,
    layers: Vec<FoldedLayer>,
    /// Logits weights [C, K] and biases [K] (K = 1001 for ImageNet); None for a feature-vector-only model.
    logits: Option<(Tensor, Tensor)>,
}

impl MobileNetV1 {
    /// Builds the network from canonical tensors (see `crate::weights`), checking every shape
    /// against `arch`, up to `head` (`Head::Logits`: the classifier too).
    pub fn from_tensors(
        w: &BTreeMap<String, RawTensor>,
        arch: Arch,
        head: Head,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let layer_table = arch.layers();
        check_multiplier(w, &layer_table[0], arch)?;
        let mut layers = Vec::with_capacity(layer_table.len());
        for layer in &layer_table {
            let (scaled, bias) = fold(w, layer)?;
            let c = layer.out_channels;
            let hwio = Tensor::from_vec(scaled, layer.weight_shape().as_slice(), device)?;
            let weight = match layer.kind {
                LayerKind::Conv => vec![hwio.permute((3, 2, 0, 1))?.contiguous()?],
                LayerKind::Depthwise => {
                    let taps = hwio.reshape((9, c))?;
                    (0..9)
                        .map(|t| taps.get(t)?.reshape((1, c, 1, 1)))
                        .collect::<candle_core::Result<_>>()?
                }
                LayerKind::Pointwise => {
                    vec![hwio.reshape((layer.in_channels, c))?.t()?.contiguous()?]
                }
            };
            let bias = Tensor::from_vec(bias, (1, c, 1, 1), device)?;
            layers.push(FoldedLayer {
                kind: layer.kind,
                stride: layer.stride,
                weight,
                bias,
            });
        }
        let logits = if head == Head::Logits {
            let f = arch.feature_dim();
            let (lw, lb) = logits_layer(w, arch)?;
            let k = lb.data.len();
            Some((
                Tensor::from_slice(&lw.data, (f, k), device)?,
                Tensor::from_slice(&lb.data, k, device)?,
            ))
        } else {
            None
        };
        Ok(Self {
            arch,
            head,
            device: device.clone(),
            layers,
            logits,
        })
    }

    /// Pooled Conv2d_13_pointwise features [N, C] of NHWC images with values in [0,1].
    pub fn features(&self, images: &Tensor) -> Result<Tensor, ModelError> {
        let (_, h, w, _) = images.dims4()?;
        if h < MIN_INPUT || w < MIN_INPUT {
            return Err(ModelError::TooSmall {
                height: h,
                width: w,
            });
        }
        // The hub signature takes [0,1]; the graph itself works on [-1,1].
        let mut x = images
            .to_dtype(DType::F32)?
            .affine(2.0, -1.0)?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x.mean((2, 3))?)
    }

    /// Logits [N, K] (K = 1001 for ImageNet, index 0 = background) of NHWC images with values in [0,1].
    pub fn logits(&self, images: &Tensor) -> Result<Tensor, ModelError> {
        let (w, b) = self.logits.as_ref().ok_or(ModelError::NoLogits)?;
        let features = self.features(images)?;
        Ok(features.matmul(w)?.broadcast_add(b)?)
    }
}

impl Backbone for MobileNetV1 {
    fn arch(&self) -> Arch {
        self.arch
    }

    fn head(&self) -> Head {
        self.head
    }

    fn out_dim(&self) -> usize {
        match &self.logits {
            Some((_, b)) if self.head == Head::Logits => b.dims1().unwrap_or(0),
            _ => self.arch.feature_dim(),
        }
    }

    fn describe(&self) -> String {
        format!("{:?}", self.device.location())
    }

    /// The layers run as candle ops on the device; there is no per-layer profile.
    fn forward(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
        _profile: Option<&mut Profile>,
    ) -> Result<Vec<f32>, ModelError> {
        let x = Tensor::from_slice(images, (n, h, w, 3), &self.device)?;
        let y = match self.head {
            Head::Logits => self.logits(&x)?,
            Head::Features => self.features(&x)?,
        };
        Ok(y.flatten_all()?.to_vec1()?)
    }
}

impl FoldedLayer {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = match self.kind {
            LayerKind::Conv => {
                let (_, _, h, w) = x.dims4()?;
                let (_, (top, bottom)) = same_padding(h, 3, self.stride);
                let (_, (left, right)) = same_padding(w, 3, self.stride);
                let padded = x
                    .pad_with_zeros(2, top, bottom)?
                    .pad_with_zeros(3, left, right)?;
                padded.conv2d(&self.weight[0], 0, self.stride, 1, 1)?
            }
            LayerKind::Depthwise => depthwise_by_taps(x, &self.weight, self.stride)?,
            LayerKind::Pointwise => {
                let (n, c, h, w) = x.dims4()?;
                let y = self.weight[0].broadcast_matmul(&x.reshape((n, c, h * w))?)?;
                y.reshape((n, (), h, w))?
            }
        };
        y.broadcast_add(&self.bias)?.clamp(0f32, 6f32)
    }
}

/// 3x3 depthwise convolution as nine shifted (and for stride 2, subsampled) views times
/// per-channel weights: O(9) tensor ops per layer on any device, where candle's grouped conv2d
/// would run one convolution per channel.
pub(crate) fn depthwise_by_taps(
    x: &Tensor,
    taps: &[Tensor],
    stride: usize,
) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, (top, bottom)) = same_padding(h, 3, stride);
    let (ow, (left, right)) = same_padding(w, 3, stride);
    // One more zero row/column for stride 2 lets every tap take a window of 2*out and keep its
    // even elements; the extra zeros are never read.
    let extra = stride - 1;
    let padded =
        x.pad_with_zeros(2, top, bottom + extra)?
            .pad_with_zeros(3, left, right + extra)?;
    let mut acc: Option<Tensor> = None;
    for (t, tap) in taps.iter().enumerate() {
        let (i, j) = (t / 3, t % 3);
        let mut view = padded
            .narrow(2, i, oh * stride)?
            .narrow(3, j, ow * stride)?;
        if stride > 1 {
            view = view
                .contiguous()?
                .reshape((n, c, oh, stride, ow, stride))?
                .narrow(3, 0, 1)?
                .narrow(5, 0, 1)?
                .reshape((n, c, oh, ow))?;
        }
        let term = view.broadcast_mul(tap)?;
        acc = Some(match acc {
            None => term,
            Some(a) => (a + term)?,
        });
    }
    acc.ok_or_else(|| candle_core::Error::Msg("depthwise layer without taps".into()))
}
