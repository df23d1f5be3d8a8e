//! Cache prefetch hints for the validator's and the interpreter's walks over large plans
//! (`validate::Validator::prefetch_ahead`, `interp::drive`): they read nothing for the program
//! and change nothing but the cache.

/// A prefetch hint for the bytes `[p, p + len)`, a cache line at a time: it reads nothing for
/// the program and changes nothing but the cache.
#[inline(always)]
pub(crate) fn prefetch_bytes<T>(p: *const T, len: usize) {
    let p = p as *const u8;
    let mut off = 0;
    while off < len {
        prefetch_line(p.wrapping_add(off));
        off += 64;
    }
}

#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch instruction never faults and has no architectural effect, whatever the
    // address (an invalid one is dropped); SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
