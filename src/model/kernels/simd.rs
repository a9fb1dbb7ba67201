//! The instruction set the kernels run with, chosen once when a network is built, as XNNPACK
//! fills an operator's microkernel pointers when it is created and ruy picks a path: each layer
//! stores its `Isa` and every call dispatches on that stored value, never re-detecting the CPU
//! inside a kernel. The crate is built for baseline x86-64 (SSE2), so the kernel bodies are
//! compiled again with AVX2+FMA and with AVX-512 enabled. `MNV1_ISA` forces a level (for tests
//! and `mnv1 bench`).

use std::fmt;

/// The environment variable that forces a level: `portable`, `avx2` or `avx512`.
pub(crate) const ISA_ENV: &str = "MNV1_ISA";

/// The levels the kernels are compiled for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Plain Rust for baseline x86-64 (or any other architecture): multiply then add.
    Portable,
    /// The same plain Rust compiled for AVX2 with fused multiply-add.
    Avx2,
    /// The hand-written AVX-512F kernels (and the plain Rust compiled for AVX-512 where a
    /// layer has no hand-written one).
    Avx512,
}

impl Level {
    pub(crate) const ALL: [Level; 3] = [Level::Portable, Level::Avx2, Level::Avx512];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run code compiled for the level.
    fn runs_here(self) -> bool {
        match self {
            Level::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f") && Level::Avx2.runs_here()
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// A level this CPU supports. Only the constructors below make one, each after asking the CPU,
/// so holding an `Isa` is what makes running the kernels compiled for its level sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Isa(Level);

#[derive(Debug, thiserror::Error)]
pub enum IsaError {
    #[error("{ISA_ENV}={0}: unknown instruction set (portable, avx2 or avx512)")]
    Unknown(String),
    #[error("{ISA_ENV}={wanted}: this CPU does not support it (it supports {supported})")]
    Unsupported { wanted: String, supported: String },
}

impl Isa {
    /// Plain Rust, which every CPU runs.
    pub(crate) fn portable() -> Isa {
        Isa(Level::Portable)
    }

    /// `level`, when this CPU supports it.
    pub(crate) fn new(level: Level) -> Option<Isa> {
        level.runs_here().then_some(Isa(level))
    }

    /// Every level this CPU supports, narrowest first.
    pub fn supported() -> Vec<Isa> {
        Level::ALL.into_iter().filter_map(Isa::new).collect()
    }

    /// The widest level this CPU supports.
    pub fn best() -> Isa {
        Isa::supported().pop().unwrap_or(Isa::portable())
    }

    /// The level named `name` (`portable`, `avx2`, `avx512`), when this CPU supports it.
    pub(crate) fn parse(name: &str) -> Result<Isa, IsaError> {
        let level = Level::ALL
            .into_iter()
            .find(|l| l.name() == name.trim().to_ascii_lowercase())
            .ok_or_else(|| IsaError::Unknown(name.to_owned()))?;
        Isa::new(level).ok_or_else(|| IsaError::Unsupported {
            wanted: name.to_owned(),
            supported: Isa::supported()
                .iter()
                .map(|i| i.level().name())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// `MNV1_ISA` when it is set, else the widest level this CPU supports.
    pub fn from_env() -> Result<Isa, IsaError> {
        match std::env::var(ISA_ENV) {
            Ok(name) if !name.is_empty() => Isa::parse(&name),
            _ => Ok(Isa::best()),
        }
    }

    pub(crate) fn level(self) -> Level {
        self.0
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// What one compiled copy of a kernel body may use, as constants, so that each copy keeps only
/// its own paths.
pub(crate) trait Target {
    /// Fused multiply-add (one rounding, as XNNPACK does).
    const FMA: bool;
    /// The hand-written AVX-512F kernels.
    const AVX512: bool;
}

pub(crate) enum Portable {}
pub(crate) enum Avx2 {}
pub(crate) enum Avx512 {}

impl Target for Portable {
    const FMA: bool = false;
    const AVX512: bool = false;
}

impl Target for Avx2 {
    const FMA: bool = true;
    const AVX512: bool = false;
}

impl Target for Avx512 {
    const FMA: bool = true;
    const AVX512: bool = true;
}

/// `a * b + c`, fused where the body was compiled with FMA; separate otherwise, since a software
/// fma would be far slower than the two operations.
#[inline(always)]
pub(crate) fn mul_add<T: Target>(a: f32, b: f32, c: f32) -> f32 {
    if T::FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Defines `$name(isa, args)`, which runs `$body::<T>(args)` compiled for `isa`'s level.
macro_rules! dispatch {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        // The body's own arguments plus the level: a kernel's signature is its body's.
        #[allow(clippy::too_many_arguments)]
        $vis fn $name(isa: $crate::model::kernels::Isa, $($arg: $ty),*) {
            match isa.level() {
                #[cfg(target_arch = "x86_64")]
                $crate::model::kernels::simd::Level::Avx512 => {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    fn run($($arg: $ty),*) { $body::<$crate::model::kernels::simd::Avx512>($($arg),*) }
                    // SAFETY: an `Isa` of this level exists only where the CPU has these
                    // features (`Isa::new`).
                    unsafe { run($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                $crate::model::kernels::simd::Level::Avx2 => {
                    #[target_feature(enable = "avx2,fma")]
                    fn run($($arg: $ty),*) { $body::<$crate::model::kernels::simd::Avx2>($($arg),*) }
                    // SAFETY: as above.
                    unsafe { run($($arg),*) }
                }
                _ => $body::<$crate::model::kernels::simd::Portable>($($arg),*),
            }
        }
    };
}
pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_the_cpu_decides() {
        assert_eq!(Isa::parse("portable").unwrap(), Isa::portable());
        assert!(matches!(Isa::parse("sse9"), Err(IsaError::Unknown(_))));
        for level in Level::ALL {
            match Isa::new(level) {
                Some(isa) => assert_eq!(Isa::parse(level.name()).unwrap(), isa),
                None => assert!(matches!(
                    Isa::parse(level.name()),
                    Err(IsaError::Unsupported { .. })
                )),
            }
        }
        assert_eq!(Isa::best(), *Isa::supported().last().unwrap());
    }
}
