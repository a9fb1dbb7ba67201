//! From canonical tensors (see `crate::weights`) to one layer's parameters: the shape-checked
//! lookup, the BatchNorm fold and the logits layer that every implementation of the network (and
//! the exporters) builds from, so that they all compute with the same folded values.

use std::collections::BTreeMap;

use super::arch::{Arch, Layer, BN_EPSILON, LOGITS_SCOPE, NUM_CLASSES};
use super::ModelError;
use crate::weights::RawTensor;

/// Smallest input side the network accepts: five stride-2 layers take 32 down to 1.
pub(crate) const MIN_INPUT: usize = 32;

/// The tensor `name`, checked to have `shape`: what every consumer of canonical weights needs.
pub(crate) fn get<'a>(
    w: &'a BTreeMap<String, RawTensor>,
    name: &str,
    shape: &[usize],
) -> Result<&'a RawTensor, ModelError> {
    let t = w
        .get(name)
        .ok_or_else(|| ModelError::Missing(name.to_string()))?;
    if t.shape != shape {
        return Err(ModelError::Shape {
            name: name.into(),
            expected: shape.to_vec(),
            found: t.shape.clone(),
        });
    }
    Ok(t)
}

/// Per-channel (scale, bias) of a layer: from its BatchNorm, or scale 1 and the folded bias.
fn scale_and_bias(
    w: &BTreeMap<String, RawTensor>,
    layer: &Layer,
) -> Result<(Vec<f64>, Vec<f32>), ModelError> {
    let c = [layer.out_channels];
    if w.contains_key(&layer.bias_name()) {
        let bias = get(w, &layer.bias_name(), &c)?;
        return Ok((vec![1.0; layer.out_channels], bias.data.clone()));
    }
    let bn = |leaf: &str| get(w, &layer.bn_name(leaf), &c);
    let (gamma, beta, mean, var) = (
        bn("gamma")?,
        bn("beta")?,
        bn("moving_mean")?,
        bn("moving_variance")?,
    );
    let mut scale = Vec::with_capacity(layer.out_channels);
    let mut bias = Vec::with_capacity(layer.out_channels);
    for i in 0..layer.out_channels {
        // Folded in f64 so the only rounding is the final one.
        let s = gamma.data[i] as f64 / (var.data[i] as f64 + BN_EPSILON).sqrt();
        scale.push(s);
        bias.push((beta.data[i] as f64 - mean.data[i] as f64 * s) as f32);
    }
    Ok((scale, bias))
}

/// A layer's filter with its BatchNorm scale folded in (TF layout, output channel last) and its
/// bias: what every implementation of the network computes with.
pub(crate) fn fold(
    w: &BTreeMap<String, RawTensor>,
    layer: &Layer,
) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
    let filter = get(w, &layer.weight_name(), &layer.weight_shape())?;
    let (scale, bias) = scale_and_bias(w, layer)?;
    let c = layer.out_channels;
    // TF layouts keep the output channel last (HWIO, [kh,kw,C,1]): scale along it.
    let scaled = filter
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| (v as f64 * scale[i % c]) as f32)
        .collect();
    Ok((scaled, bias))
}

/// A layer's parameters with its BatchNorm unfolded, as training needs them.
pub(crate) struct TrainParams {
    /// The filter, TF layout (HWIO, output channel last).
    pub(crate) filter: Vec<f32>,
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
    pub(crate) moving_mean: Vec<f32>,
    pub(crate) moving_variance: Vec<f32>,
    /// The source had folded the BatchNorm away (.tflite: filter + `biases`).
    pub(crate) folded: bool,
}

/// A layer's filter and BatchNorm for training, the one builder both trainers use. A layer
/// whose BatchNorm the source folded away starts as gamma = 1, beta = bias, mean = 0, variance
/// = 1 - eps, which computes exactly the folded layer in inference mode (MOBILENET_V1.md);
/// train mode needs its statistics first (the trainers' `calibrate`).
pub(crate) fn train_params(
    w: &BTreeMap<String, RawTensor>,
    layer: &Layer,
) -> Result<TrainParams, ModelError> {
    let c = layer.out_channels;
    let filter = get(w, &layer.weight_name(), &layer.weight_shape())?
        .data
        .clone();
    let folded = w.contains_key(&layer.bias_name());
    let (gamma, beta, moving_mean, moving_variance) = if folded {
        (
            vec![1.0; c],
            get(w, &layer.bias_name(), &[c])?.data.clone(),
            vec![0.0; c],
            vec![(1.0 - BN_EPSILON) as f32; c],
        )
    } else {
        let bn = |leaf: &str| get(w, &layer.bn_name(leaf), &[c]).map(|t| t.data.clone());
        (
            bn("gamma")?,
            bn("beta")?,
            bn("moving_mean")?,
            bn("moving_variance")?,
        )
    };
    Ok(TrainParams {
        filter,
        gamma,
        beta,
        moving_mean,
        moving_variance,
        folded,
    })
}

/// The logits layer's weights `[1, 1, C, K]` and biases `[K]`, shape-checked: K is 1001 for the
/// ImageNet modules, a fine-tuned head (`mnv1 finetune`) has its own.
pub(crate) fn logits_layer(
    w: &BTreeMap<String, RawTensor>,
    arch: Arch,
) -> Result<(&RawTensor, &RawTensor), ModelError> {
    let name = format!("{LOGITS_SCOPE}/weights");
    let Some(weights) = w.get(&name) else {
        return Err(ModelError::NoLogits);
    };
    let k = weights.shape.last().copied().unwrap_or(NUM_CLASSES);
    let f = arch.feature_dim();
    Ok((
        get(w, &name, &[1, 1, f, k])?,
        get(w, &format!("{LOGITS_SCOPE}/biases"), &[k])?,
    ))
}

/// Turns "0.25 weights for a 0.5 variant" into one clear error instead of a shape mismatch.
pub(crate) fn check_multiplier(
    w: &BTreeMap<String, RawTensor>,
    first: &Layer,
    arch: Arch,
) -> Result<(), ModelError> {
    let Some(t) = w.get(&first.weight_name()) else {
        return Err(ModelError::Missing(first.weight_name()));
    };
    let filters = t.shape.last().copied().unwrap_or(0);
    if t.shape.len() == 4 && filters != first.out_channels {
        let found = Arch::from_first_conv_filters(filters)
            .map(|a| a.depth_multiplier.to_string())
            .unwrap_or_else(|| String::from("unknown"));
        return Err(ModelError::WrongMultiplier {
            found,
            filters,
            wanted: arch.depth_multiplier,
        });
    }
    Ok(())
}
