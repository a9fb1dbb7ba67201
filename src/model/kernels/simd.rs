//! Run-time choice of instruction set for the hand-written kernels: the crate is built for
//! baseline x86-64 (SSE2), so the kernels are compiled again with AVX-512 or AVX2+FMA enabled and
//! the widest one the CPU has is picked.

/// The instruction sets a kernel body may be compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Avx512,
    Avx2Fma,
    Baseline,
}

pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2Fma;
        }
    }
    Level::Baseline
}

/// `a * b + c`, fused where the body was compiled with FMA (one rounding, as XNNPACK does);
/// separate otherwise, since a software fma would be far slower than the two operations.
#[inline(always)]
pub fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Defines `$name(args)` that calls `$body::<FMA>(args)` compiled for the best available level.
macro_rules! dispatch {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) { $body::<true>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { $body::<true>($($arg),*) }
                match $crate::model::kernels::simd::level() {
                    // SAFETY: the CPU reported these features at run time.
                    $crate::model::kernels::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::model::kernels::simd::Level::Avx2Fma => return unsafe { avx2($($arg),*) },
                    $crate::model::kernels::simd::Level::Baseline => {}
                }
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use dispatch;
