//! A whole `.npy` file of images.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mnv1::testing::inputs::npy::read_npy_images(data);
});
