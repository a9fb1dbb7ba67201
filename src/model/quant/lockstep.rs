//! One image's layers run by every thread of the pool at once, each on its own band of every
//! layer, with a spinning barrier between layers: what the integer network does with an image
//! that has the pool to itself (batch 1). A fork-join per layer (rayon's `par_chunks_mut`)
//! costs 1-2 us of hand-over each time on this 2-core machine, against about 0.3 us for the
//! barrier, and 1.0_224 runs its 27 layers in about 2 ms on 2 threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A barrier for the pool's threads that spins (yielding now and then, in case the machine
/// has fewer cores than threads) instead of sleeping: its waits are a few microseconds.
pub(super) struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    /// Set when a thread panics between barriers (`Arrival`), so that the others panic too
    /// instead of waiting for it forever.
    abandoned: AtomicBool,
}

/// Held by each thread for the whole run: dropped while panicking, it abandons the barrier.
pub(super) struct Arrival<'a>(&'a SpinBarrier);

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandoned.store(true, Ordering::Release);
        }
    }
}

impl SpinBarrier {
    pub(super) fn new(threads: usize) -> Self {
        Self {
            threads,
            arrived: AtomicUsize::new(0),
            abandoned: AtomicBool::new(false),
        }
    }

    /// What each thread holds while it takes part.
    pub(super) fn join(&self) -> Arrival<'_> {
        Arrival(self)
    }

    /// Waits at the `round`-th barrier (0, 1, 2, ...: every thread passes the same ones in
    /// order) until all threads have reached it. What each thread wrote before it is visible
    /// to every thread after it (release on arrival, acquire on leaving).
    pub(super) fn wait(&self, round: usize) {
        self.arrived.fetch_add(1, Ordering::AcqRel);
        let target = self.threads * (round + 1);
        let mut spins = 0u32;
        while self.arrived.load(Ordering::Acquire) < target {
            if self.abandoned.load(Ordering::Acquire) {
                panic!("another thread of the lockstep run panicked");
            }
            spins += 1;
            if spins.is_multiple_of(1 << 12) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// A byte buffer that the threads of one lockstep run share: between two barriers each
/// thread writes only its own band, and nobody writes what anybody reads.
pub(super) struct SharedBytes {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the pointer is only dereferenced through `read` and `band`, whose callers vouch
// that no two threads touch the same bytes between barriers unless both only read.
unsafe impl Sync for SharedBytes {}

impl SharedBytes {
    pub(super) fn new(buf: &mut [u8]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// The first `len` bytes, to read.
    ///
    /// # Safety
    /// No thread may write them while the slice lives.
    pub(super) unsafe fn read(&self, len: usize) -> &[u8] {
        assert!(len <= self.len);
        // SAFETY: in bounds (checked); nobody writes them meanwhile (the caller's promise).
        unsafe { std::slice::from_raw_parts(self.ptr, len) }
    }

    /// Bytes `range`, to write.
    ///
    /// # Safety
    /// No other thread may read or write them while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn band(&self, range: std::ops::Range<usize>) -> &mut [u8] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: in bounds (checked); this thread's alone (the caller's promise).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every thread sees every other's writes of the previous round: each round, each thread
    /// writes its slot to the round's number and then checks everybody's.
    #[test]
    fn barrier_orders_the_rounds() {
        let threads = 3;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let barrier = SpinBarrier::new(threads);
        let mut slots = vec![0u8; threads];
        let shared = SharedBytes::new(&mut slots);
        let bad = AtomicUsize::new(0);
        pool.broadcast(|ctx| {
            let t = ctx.index();
            for round in 0..200usize {
                // SAFETY: slot t is this thread's alone until the barrier.
                unsafe { shared.band(t..t + 1)[0] = round as u8 };
                barrier.wait(2 * round);
                // SAFETY: nobody writes until the next barrier.
                let seen = unsafe { shared.read(threads) };
                if seen.iter().any(|&v| v != round as u8) {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                barrier.wait(2 * round + 1);
            }
        });
        assert_eq!(bad.load(Ordering::Relaxed), 0);
    }

    /// A thread that panics between barriers makes the others panic at the next one (and the
    /// run with them) instead of leaving them waiting.
    #[test]
    fn a_panic_does_not_leave_the_others_waiting() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let barrier = SpinBarrier::new(2);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.broadcast(|ctx| {
                let _arrival = barrier.join();
                if ctx.index() == 1 {
                    panic!("a kernel's assertion");
                }
                barrier.wait(0);
            })
        }));
        assert!(run.is_err());
    }
}
