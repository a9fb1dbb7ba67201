//! Issue 11 (hardening), item 2: the memory one decoded non-JPEG image takes is bounded as for
//! JPEG (8-bit pixels resized directly, no full-size float copy), so `--threads N` large decodes
//! cannot multiply into tens of gigabytes. Measured with a counting allocator (bytes, not time);
//! one test in this binary, so no other thread allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgba};
use mnv1::testing::preprocess::{preprocess_image, Preprocess};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn encoded(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(w, h, |x, y| {
        Rgba([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 256) as u8, 200])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgba8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

#[test]
fn a_large_rgba_png_decodes_without_a_float_copy() {
    let (w, h) = (2000u32, 1500u32);
    let pixels = (w * h) as usize;
    let png = encoded(ImageFormat::Png, w, h);
    let p = Preprocess::new(224, 224);
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = preprocess_image(&png, &p).unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!((out.height, out.width), (224, 224));
    // The decoder's RGBA buffer (4 bytes a pixel) and its RGB copy (3): 7 bytes a pixel, plus
    // the decoder's own state. A float RGB copy alone would be 12 bytes a pixel.
    let bound = 8 * pixels + (4 << 20);
    assert!(
        peak < bound,
        "decoding {w}x{h} took {peak} bytes at its peak, {:.1} a pixel (bound {bound})",
        peak as f64 / pixels as f64
    );
}
