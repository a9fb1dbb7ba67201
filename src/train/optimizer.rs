//! The two optimizers of `--optimizer`: SGD with momentum (TensorFlow's MomentumOptimizer update,
//! which candle-nn lacks) and Adam (candle-nn's AdamW with no weight decay), on candle `Var`s for
//! the candle train network, and `InPlace`, the same updates on the CPU training path's flat
//! parameter buffers, with their state allocated once.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer as _, ParamsAdamW};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Sgd { momentum: f64 },
    Adam,
}

pub enum Optimizer {
    Sgd(Sgd),
    Adam(AdamW),
}

/// `accum = momentum * accum + grad; var -= lr * accum` (tf.compat.v1.train.MomentumOptimizer).
pub struct Sgd {
    vars: Vec<(Var, Option<Tensor>)>,
    lr: f64,
    momentum: f64,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, vars: Vec<Var>, lr: f64) -> candle_core::Result<Self> {
        Ok(match kind {
            OptimizerKind::Sgd { momentum } => Optimizer::Sgd(Sgd {
                vars: vars.into_iter().map(|v| (v, None)).collect(),
                lr,
                momentum,
            }),
            // Keras' Adam defaults; eps 1e-7 as Keras rather than candle's 1e-8.
            OptimizerKind::Adam => Optimizer::Adam(AdamW::new(
                vars,
                ParamsAdamW {
                    lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-7,
                    weight_decay: 0.0,
                },
            )?),
        })
    }

    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        match self {
            Optimizer::Adam(a) => a.step(grads),
            Optimizer::Sgd(s) => {
                for (var, accum) in &mut s.vars {
                    let Some(g) = grads.get(var) else { continue };
                    // A gradient can still hold the step's forward graph (candle builds it from
                    // the activations); detached, the accumulator keeps only its values, not
                    // every step's graph (which grew memory and time with each step).
                    let g = g.detach();
                    let next = match accum.take() {
                        Some(a) => ((a * s.momentum)? + g)?.detach(),
                        None => g,
                    };
                    var.set(&(var.as_tensor() - (&next * s.lr)?)?)?;
                    *accum = Some(next);
                }
                Ok(())
            }
        }
    }
}

/// A parameter of the CPU training path: its values and the gradient of the last step.
pub(crate) struct Param {
    pub(crate) value: Vec<f32>,
    pub(crate) grad: Vec<f32>,
}

impl Param {
    pub(crate) fn new(value: Vec<f32>) -> Self {
        let grad = vec![0.0; value.len()];
        Self { value, grad }
    }
}

/// The optimizers' updates in place, in f32, on `Param`s given in the same order every step.
pub struct InPlace {
    kind: OptimizerKind,
    lr: f64,
    steps: i32,
    /// Per parameter: the momentum accumulator (SGD), or the first and second moments (Adam).
    state: Vec<[Vec<f32>; 2]>,
}

impl InPlace {
    pub fn new(kind: OptimizerKind, lr: f64) -> Self {
        Self {
            kind,
            lr,
            steps: 0,
            state: Vec::new(),
        }
    }

    /// One update of every parameter from its `grad`.
    pub(crate) fn step<'a>(&mut self, params: impl Iterator<Item = &'a mut Param>) {
        self.steps += 1;
        let lr = self.lr as f32;
        for (i, p) in params.enumerate() {
            if self.state.len() <= i {
                self.state.push([vec![0.0; p.value.len()], Vec::new()]);
            }
            let [first, second] = &mut self.state[i];
            match self.kind {
                OptimizerKind::Sgd { momentum } => {
                    // accum = momentum * accum + grad; var -= lr * accum (the first step: accum = grad).
                    let m = momentum as f32;
                    for ((v, a), &g) in p.value.iter_mut().zip(first.iter_mut()).zip(&p.grad) {
                        *a = m * *a + g;
                        *v -= lr * *a;
                    }
                }
                OptimizerKind::Adam => {
                    // candle-nn's AdamW without weight decay, Keras' constants (see `Optimizer::new`).
                    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-7f32);
                    if second.is_empty() {
                        second.resize(p.value.len(), 0.0);
                    }
                    let scale_m = (1.0 / (1.0 - b1.powi(self.steps))) as f32;
                    let scale_v = (1.0 / (1.0 - b2.powi(self.steps))) as f32;
                    let (b1, b2) = (b1 as f32, b2 as f32);
                    for (((v, m), s), &g) in p
                        .value
                        .iter_mut()
                        .zip(first.iter_mut())
                        .zip(second.iter_mut())
                        .zip(&p.grad)
                    {
                        *m = b1 * *m + (1.0 - b1) * g;
                        *s = b2 * *s + (1.0 - b2) * g * g;
                        *v -= lr * (*m * scale_m) / ((*s * scale_v).sqrt() + eps);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn sgd_momentum_follows_tensorflow_update() {
        // Loss = 3 * w, gradient 3 every step; lr 0.1, momentum 0.9, w0 = 1:
        // step 1: accum = 3, w = 1 - 0.3 = 0.7; step 2: accum = 0.9 * 3 + 3 = 5.7, w = 0.7 - 0.57 = 0.13.
        let w = Var::new(&[1f64], &Device::Cpu).unwrap();
        let mut opt =
            Optimizer::new(OptimizerKind::Sgd { momentum: 0.9 }, vec![w.clone()], 0.1).unwrap();
        for want in [0.7, 0.13] {
            let grads = (w.as_tensor() * 3.0)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            opt.step(&grads).unwrap();
            let got = w.as_tensor().to_vec1::<f64>().unwrap()[0];
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn in_place_updates_match_the_candle_optimizers() {
        // Three steps on w = [1, -2] with the gradient of sum(w^3) (it changes every step), SGD
        // and Adam, in place and through candle's Vars: the same values to f32 rounding.
        for kind in [OptimizerKind::Sgd { momentum: 0.9 }, OptimizerKind::Adam] {
            let start = [1f32, -2.0];
            let var = Var::new(&start, &Device::Cpu).unwrap();
            let mut reference = Optimizer::new(kind, vec![var.clone()], 0.05).unwrap();
            let mut param = Param::new(start.to_vec());
            let mut in_place = InPlace::new(kind, 0.05);
            for _ in 0..3 {
                let grads = var
                    .as_tensor()
                    .powf(3.0)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                reference.step(&grads).unwrap();
                param.grad = param.value.iter().map(|w| 3.0 * w * w).collect();
                in_place.step(std::iter::once(&mut param));
            }
            let want: Vec<f32> = var.as_tensor().to_vec1().unwrap();
            for (a, b) in param.value.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{kind:?}: {:?} vs {want:?}",
                    param.value
                );
            }
            assert!(
                (param.value[0] - 1.0).abs() > 0.01,
                "{kind:?} moved the weights"
            );
        }
    }
}
