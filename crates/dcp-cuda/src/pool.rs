//! The bookkeeping of the device-memory pool ([`crate::gpu::Gpu::alloc`]): free lists of
//! device allocations by size class, bounded by a byte cap. No CUDA here — the GPU side
//! allocates on a miss, frees what the cap refuses, and waits for its streams before handing
//! out a buffer returned since their last synchronisation.
//!
//! Why: preparing a plan's programs allocated every buffer with `cuMemAlloc` and freed them with
//! `cuMemFree` (which synchronises the device) when the programs went: up to 0.42 s of a training
//! step for a new Ulysses plan at world 2, and most of `bench-gpu`'s ~0.2 s per plan run. Plans
//! of one workload have similar buffer sizes, so freed buffers are reused instead.

use std::collections::HashMap;

/// Smallest size class in bytes (and the granularity below 4 KiB).
const MIN_CLASS: usize = 512;

/// The allocation size serving a request of `bytes`: `bytes` rounded up to the next value of
/// the form m · 2^k with m ∈ {4, 5, 6, 7} (four classes per octave, so at most 25 % more than
/// asked), at least 512 bytes.
pub fn size_class(bytes: usize) -> usize {
    if bytes <= MIN_CLASS {
        return MIN_CLASS;
    }
    // 2^k ≤ bytes - 1 < 2^(k+1); step = 2^(k-2).
    let k = usize::BITS - 1 - (bytes - 1).leading_zeros();
    let step = 1usize << (k - 2);
    bytes.div_ceil(step) * step
}

/// Free lists by size class with a byte cap, and hit / miss counts.
#[derive(Debug, Default)]
pub struct FreeLists {
    free: HashMap<usize, Vec<u64>>,
    cached: usize,
    cap: usize,
    /// A buffer came back since the owner's streams were last idle: it may still be in use by
    /// work enqueued before it was dropped, so handing it out needs a wait first.
    returned: bool,
    pub hits: u64,
    pub misses: u64,
}

impl FreeLists {
    /// Lists keeping at most `cap` bytes (0: nothing is kept, every buffer is freed).
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            ..Self::default()
        }
    }

    /// A cached allocation of `class` bytes, and whether the owner must wait for its streams
    /// before using it; None (a miss) when there is none.
    pub fn take(&mut self, class: usize) -> Option<(u64, bool)> {
        match self.free.get_mut(&class).and_then(|v| v.pop()) {
            Some(p) => {
                self.cached -= class;
                self.hits += 1;
                Some((p, self.returned))
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keeps `ptr` (an allocation of `class` bytes) for reuse: false when the cap refuses it
    /// (the caller frees it).
    pub fn put(&mut self, class: usize, ptr: u64) -> bool {
        if self.cached + class > self.cap {
            return false;
        }
        self.free.entry(class).or_default().push(ptr);
        self.cached += class;
        self.returned = true;
        true
    }

    /// The owner's streams were idle: every cached buffer is free to use.
    pub fn streams_idle(&mut self) {
        self.returned = false;
    }

    /// Every cached allocation (to be freed), leaving the lists empty.
    pub fn drain(&mut self) -> Vec<u64> {
        self.cached = 0;
        self.free.drain().flat_map(|(_, v)| v).collect()
    }

    /// Bytes held in the lists.
    pub fn cached(&self) -> usize {
        self.cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_cover_the_request_within_a_quarter() {
        assert_eq!(size_class(0), MIN_CLASS);
        assert_eq!(size_class(1), MIN_CLASS);
        assert_eq!(size_class(512), 512);
        assert_eq!(size_class(513), 640);
        assert_eq!(size_class(1024), 1024);
        assert_eq!(size_class(1025), 1280);
        assert_eq!(size_class(3 << 20), 3 << 20);
        let mut prev = 0;
        for b in (1..5_000_000usize)
            .step_by(997)
            .chain([1 << 30, (1 << 30) + 1, 40 << 30])
        {
            let c = size_class(b);
            assert!(c >= b, "{b} -> {c}");
            assert!(c <= MIN_CLASS.max(b + b / 4), "{b} -> {c}");
            assert!(c >= prev, "classes grow with the request");
            prev = c;
            // A class is its own class: a cached buffer serves every request mapping to it.
            assert_eq!(size_class(c), c);
        }
    }

    #[test]
    fn free_lists_reuse_by_class_respect_the_cap_and_say_when_to_wait() {
        let mut f = FreeLists::new(3000);
        assert_eq!(f.take(1024), None);
        assert!(f.put(1024, 0xa000));
        assert!(f.put(1024, 0xb000));
        assert!(!f.put(1024, 0xc000), "3072 bytes would exceed the cap");
        assert_eq!(f.cached(), 2048);
        // Returned since the streams were idle: the owner must wait.
        assert_eq!(f.take(1024), Some((0xb000, true)));
        f.streams_idle();
        assert_eq!(f.take(1024), Some((0xa000, false)));
        assert_eq!(f.take(1024), None);
        assert_eq!(f.take(512), None);
        assert_eq!((f.hits, f.misses), (2, 3));
        assert!(f.put(640, 1) && f.put(512, 2));
        let mut d = f.drain();
        d.sort();
        assert_eq!(d, [1, 2]);
        assert_eq!(f.cached(), 0);
        // Cap 0: nothing is kept.
        assert!(!FreeLists::new(0).put(512, 7));
    }
}
