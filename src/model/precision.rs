//! The arithmetic a network runs in: fp32 (the float kernels, candle), bf16 (float weights run
//! with bfloat16 products and fp32 sums) or int8 (TFLite's integer arithmetic: a quantized
//! model, or float weights quantized after training).

/// What `--precision` asks for; a quantized model is int8 whatever its scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Bf16,
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
