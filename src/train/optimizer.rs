//! The two optimizers of `--optimizer`: SGD with momentum (TensorFlow's MomentumOptimizer update,
//! which candle-nn lacks) and Adam (candle-nn's AdamW with no weight decay).

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
}
