//! What the model predicts for each validation image: the report's confusion matrix, per-class
//! figures and grid of mistakes come from these.

use candle_core::{DType, Tensor, D};

/// One validation image: its class, the arg-max class and that class's softmax probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Predicted {
    pub label: usize,
    pub predicted: usize,
    pub probability: f32,
}

/// The arg-max and its probability per row of `logits` [N, K], paired with `labels` (len N).
pub fn from_logits(logits: &Tensor, labels: &[usize]) -> candle_core::Result<Vec<Predicted>> {
    let probs = candle_nn::ops::softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let rows = probs.to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .zip(labels)
        .map(|(row, &label)| {
            let (predicted, &probability) = row
                .iter()
                .enumerate()
                // Ties go to the lower index, as argmax does.
                .fold((0, &f32::NEG_INFINITY), |best, (i, p)| {
                    if *p > *best.1 {
                        (i, p)
                    } else {
                        best
                    }
                });
            Predicted {
                label,
                predicted,
                probability,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn arg_max_and_softmax_probability_per_row() {
        let logits = Tensor::new(&[[0.0f32, 2.0, 0.0], [1.0, 1.0, 1.0]], &Device::Cpu).unwrap();
        let p = from_logits(&logits, &[1, 2]).unwrap();
        // exp(2) / (exp(2) + 2) and 1/3 (a tie: the lowest index wins).
        let e2 = 2f32.exp();
        assert_eq!((p[0].label, p[0].predicted), (1, 1));
        assert!((p[0].probability - e2 / (e2 + 2.0)).abs() < 1e-6);
        assert_eq!((p[1].label, p[1].predicted), (2, 0));
        assert!((p[1].probability - 1.0 / 3.0).abs() < 1e-6);
    }
}
