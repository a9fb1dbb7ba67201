//! mnv1's post-training quantization parameters of float weights, as JSON on stdout, for
//! `tools/ptq_vs_tflite.py` to compare with TFLiteConverter's: the input's scale and zero point,
//! then per layer (Conv2d_0 .. Conv2d_13_pointwise, Logits) the output's and the filter's scales.
//!
//!     cargo run --release --example ptq_params -- WEIGHTS CALIBRATION_DIR SIZE

use anyhow::{bail, Result};
use mnv1::testing::preprocess::Preprocess;
use mnv1::testing::quantize::{images, quantize, Calibrator};
use mnv1::testing::weights::tflite::QuantLayer;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, dir, size] = args.as_slice() else {
        bail!("usage: ptq_params WEIGHTS CALIBRATION_DIR SIZE");
    };
    let size: usize = size.parse()?;
    let w = mnv1::testing::weights::load(std::path::Path::new(weights))?;
    let mut calibrator = Calibrator::new(&w, (size, size), 4)?;
    images::add_images(&mut calibrator, dir.as_ref(), &Preprocess::new(size, size))?;
    let Some(calibration) = calibrator.finish() else {
        bail!("{dir}: no calibration image");
    };
    let net = quantize(&w, &calibration)?;
    let layer = |l: &QuantLayer| {
        serde_json::json!({
            "output": [l.output.scale, l.output.zero_point],
            "filter_scales": l.filter_scales,
            "bias": l.bias,
        })
    };
    let out = serde_json::json!({
        "input": [net.input.scale, net.input.zero_point],
        "images": calibration.images,
        "layers": net.body.iter().chain(&net.logits).map(layer).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(())
}
