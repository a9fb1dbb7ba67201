//! Hugging Face transformers' MobileNet V1 layout (`google/mobilenet_v1_1.0_224`,
//! `google/mobilenet_v1_0.75_192`), mapped back to the canonical TF-Slim names and layouts.
//!
//! This is the inverse of transformers' `_build_tf_to_pytorch_map` and
//! `load_tf_weights_in_mobilenet_v1` (models/mobilenet_v1/modeling_mobilenet_v1.py): PyTorch OIHW
//! filters, BatchNorm as `weight, bias, running_mean, running_var`, the stem as
//! `mobilenet_v1.conv_stem`, the 26 separable halves as `mobilenet_v1.layer.{0..25}` (even:
//! depthwise, odd: pointwise) and the logits as a `classifier` Linear layer [1001, C].

use std::collections::BTreeMap;

use super::RawTensor;
use crate::model::arch::{Arch, LayerKind, LOGITS_SCOPE};

const STEM: &str = "mobilenet_v1.conv_stem";

/// True when `tensors` are named the transformers way.
pub fn is_transformers_layout(tensors: &BTreeMap<String, RawTensor>) -> bool {
    tensors.contains_key(&format!("{STEM}.convolution.weight"))
}

/// Renames and transposes transformers tensors into canonical ones; unknown names are dropped.
pub fn to_canonical(
    mut hf: BTreeMap<String, RawTensor>,
) -> Result<BTreeMap<String, RawTensor>, String> {
    let stem = format!("{STEM}.convolution.weight");
    let filters = hf
        .get(&stem)
        .map(|t| t.shape.first().copied().unwrap_or(0))
        .unwrap_or(0);
    let arch = Arch::from_first_conv_filters(filters).ok_or_else(|| {
        format!("{stem} has {filters} output channels, which fits no depth multiplier")
    })?;
    let mut out = BTreeMap::new();
    for (i, layer) in arch.layers().iter().enumerate() {
        let scope = if i == 0 {
            STEM.to_string()
        } else {
            format!("mobilenet_v1.layer.{}", i - 1)
        };
        let mut take = |leaf: &str| {
            let name = format!("{scope}.{leaf}");
            hf.remove(&name).ok_or_else(|| format!("no tensor {name}"))
        };
        let filter = take("convolution.weight")?;
        let filter = match layer.kind {
            // [C, 1, kh, kw] -> [kh, kw, C, 1]
            LayerKind::Depthwise => permute4(&filter, [2, 3, 0, 1])?,
            // OIHW -> HWIO
            LayerKind::Conv | LayerKind::Pointwise => permute4(&filter, [2, 3, 1, 0])?,
        };
        out.insert(layer.weight_name(), filter);
        for (leaf, tf_leaf) in [
            ("weight", "gamma"),
            ("bias", "beta"),
            ("running_mean", "moving_mean"),
            ("running_var", "moving_variance"),
        ] {
            out.insert(
                layer.bn_name(tf_leaf),
                take(&format!("normalization.{leaf}"))?,
            );
        }
    }
    if let (Some(w), Some(b)) = (hf.remove("classifier.weight"), hf.remove("classifier.bias")) {
        let [classes, channels] = w.shape[..] else {
            return Err(format!(
                "classifier.weight has shape {:?}, expected [classes, channels]",
                w.shape
            ));
        };
        // Linear [classes, C] -> 1x1 conv HWIO [1, 1, C, classes]
        let t = permute4(
            &RawTensor::new(vec![classes, channels, 1, 1], w.data),
            [2, 3, 1, 0],
        )?;
        out.insert(format!("{LOGITS_SCOPE}/weights"), t);
        out.insert(format!("{LOGITS_SCOPE}/biases"), b);
    }
    Ok(out)
}

/// `out.shape[i] = t.shape[perm[i]]`, row-major.
fn permute4(t: &RawTensor, perm: [usize; 4]) -> Result<RawTensor, String> {
    let s: [usize; 4] = t.shape[..]
        .try_into()
        .map_err(|_| format!("expected a 4-d tensor, got shape {:?}", t.shape))?;
    let strides = [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
    let shape = perm.map(|p| s[p]);
    let mut data = Vec::with_capacity(t.data.len());
    for a in 0..shape[0] {
        for b in 0..shape[1] {
            for c in 0..shape[2] {
                for d in 0..shape[3] {
                    let idx = [a, b, c, d];
                    let mut src = 0;
                    for k in 0..4 {
                        src += idx[k] * strides[perm[k]];
                    }
                    data.push(t.data[src]);
                }
            }
        }
    }
    Ok(RawTensor::new(shape.to_vec(), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_axes() {
        // [2, 1, 1, 3] OIHW -> HWIO [1, 1, 3, 2]: element (o, i) lands at (i, o).
        let t = RawTensor::new(vec![2, 3, 1, 1], vec![0., 1., 2., 10., 11., 12.]);
        let p = permute4(&t, [2, 3, 1, 0]).unwrap();
        assert_eq!(p.shape, vec![1, 1, 3, 2]);
        assert_eq!(p.data, vec![0., 10., 1., 11., 2., 12.]);
        // The depthwise permutation is its own inverse.
        let d = RawTensor::new(vec![3, 1, 2, 2], (0..12).map(|v| v as f32).collect());
        let back = permute4(&permute4(&d, [2, 3, 0, 1]).unwrap(), [2, 3, 0, 1]).unwrap();
        assert_eq!(back, d);
    }
}
