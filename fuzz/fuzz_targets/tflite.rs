//! A whole `.tflite` flatbuffer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mnv1::testing::weights::tflite::read_tflite(data);
});
