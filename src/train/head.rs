//! The new classification head: dropout, then a dense layer from the pooled features to K logits
//! (the 1x1 `Conv2d_1c_1x1` of TF-Slim on a 1x1 map), trained with softmax cross-entropy.

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::Rng;

use super::network::raw;
use crate::model::arch::LOGITS_SCOPE;
use crate::weights::RawTensor;

pub struct ClassifierHead {
    /// [C, K]
    pub weight: Var,
    /// [K]
    pub bias: Var,
}

impl ClassifierHead {
    /// Glorot-uniform weights (Keras' Dense default) from the run's seeded generator, zero biases.
    pub fn new(
        features: usize,
        classes: usize,
        dtype: DType,
        device: &Device,
        rng: &mut StdRng,
    ) -> candle_core::Result<Self> {
        let limit = (6.0 / (features + classes) as f64).sqrt();
        let w: Vec<f64> = (0..features * classes)
            .map(|_| rng.random_range(-limit..limit))
            .collect();
        let weight = Tensor::from_vec(w, (features, classes), device)?.to_dtype(dtype)?;
        let bias = Tensor::zeros(classes, dtype, device)?;
        Ok(Self {
            weight: Var::from_tensor(&weight)?,
            bias: Var::from_tensor(&bias)?,
        })
    }

    pub fn vars(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }

    /// Logits [N, K] of features [N, C].
    pub fn forward(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        features
            .matmul(self.weight.as_tensor())?
            .broadcast_add(self.bias.as_tensor())
    }

    /// The head under its canonical names: `Conv2d_1c_1x1/weights` [1,1,C,K] and `biases` [K].
    pub fn to_tensors(&self) -> candle_core::Result<[(String, RawTensor); 2]> {
        let (c, k) = self.weight.as_tensor().dims2()?;
        Ok([
            (
                format!("{LOGITS_SCOPE}/weights"),
                raw(self.weight.as_tensor(), vec![1, 1, c, k])?,
            ),
            (
                format!("{LOGITS_SCOPE}/biases"),
                raw(self.bias.as_tensor(), vec![k])?,
            ),
        ])
    }
}

/// Inverted dropout with the run's seeded generator (candle's own dropout draws from an unseeded
/// one, which would break "same seed, same result").
pub(crate) fn dropout(x: &Tensor, rate: f64, rng: &mut StdRng) -> candle_core::Result<Tensor> {
    if rate <= 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 - rate;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.random::<f64>() < keep {
                (1.0 / keep) as f32
            } else {
                0.0
            }
        })
        .collect();
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?)
}

/// Mean softmax cross-entropy of `logits` [N, K] against `labels` [N] (u32), and how many rows
/// have their label as the arg-max.
pub fn loss_and_correct(logits: &Tensor, labels: &Tensor) -> candle_core::Result<(Tensor, usize)> {
    let loss = candle_nn::loss::cross_entropy(logits, labels)?;
    let predicted = logits.argmax(1)?;
    let correct = predicted
        .eq(labels)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as usize;
    Ok((loss, correct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn head_gradients_match_finite_differences() {
        // Analytic gradients (candle's backward through matmul, bias, log-softmax and NLL) against
        // central differences of the same loss, in f64 so that h = 1e-6 is well conditioned.
        let dev = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(7);
        let (n, c, k) = (5, 6, 3);
        let head = ClassifierHead::new(c, k, DType::F64, &dev, &mut rng).unwrap();
        head.bias
            .set(&Tensor::new(&[0.1f64, -0.2, 0.3], &dev).unwrap())
            .unwrap();
        let x: Vec<f64> = (0..n * c).map(|_| rng.random_range(0.0..6.0)).collect();
        let x = Tensor::from_vec(x, (n, c), &dev).unwrap();
        let labels = Tensor::new(&[0u32, 2, 1, 2, 0], &dev).unwrap();
        let loss_of = |h: &ClassifierHead| -> f64 {
            loss_and_correct(&h.forward(&x).unwrap(), &labels)
                .unwrap()
                .0
                .to_scalar::<f64>()
                .unwrap()
        };
        let (loss, _) = loss_and_correct(&head.forward(&x).unwrap(), &labels).unwrap();
        let grads = loss.backward().unwrap();
        for var in head.vars() {
            let analytic: Vec<f64> = grads
                .get(&var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let shape = var.as_tensor().shape().clone();
            let eps = 1e-6;
            for i in 0..base.len() {
                let mut plus = base.clone();
                plus[i] += eps;
                var.set(&Tensor::from_vec(plus, &shape, &dev).unwrap())
                    .unwrap();
                let lp = loss_of(&head);
                let mut minus = base.clone();
                minus[i] -= eps;
                var.set(&Tensor::from_vec(minus, &shape, &dev).unwrap())
                    .unwrap();
                let lm = loss_of(&head);
                var.set(&Tensor::from_vec(base.clone(), &shape, &dev).unwrap())
                    .unwrap();
                let numeric = (lp - lm) / (2.0 * eps);
                assert!(
                    (numeric - analytic[i]).abs() < 1e-7,
                    "param {i}: numeric {numeric} vs analytic {}",
                    analytic[i]
                );
            }
        }
    }

    #[test]
    fn dropout_is_seeded_and_keeps_the_expectation() {
        let dev = Device::Cpu;
        let x = Tensor::ones((100, 100), DType::F32, &dev).unwrap();
        let a = dropout(&x, 0.3, &mut StdRng::seed_from_u64(1)).unwrap();
        let b = dropout(&x, 0.3, &mut StdRng::seed_from_u64(1)).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            a.flatten_all().unwrap().to_vec1().unwrap(),
            b.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(a, b);
        let dropped = a.iter().filter(|&&v| v == 0.0).count();
        assert!(
            (2700..3300).contains(&dropped),
            "{dropped} of 10000 dropped at rate 0.3"
        );
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
    }
}
