//! [`Allocator`]: mimalloc as the global allocator, asked for plain blocks when the alignment
//! asked for is one that every mimalloc block has.
//!
//! The `mimalloc` crate's `MiMalloc` passes every request to `mi_malloc_aligned`, whose
//! alignment checks and slower entry cost about 40 instructions a call in the planner's
//! profile (callgrind), and up to 160 for some sizes. A block from `mi_malloc` is aligned to
//! 16 bytes (`MI_MAX_ALIGN_SIZE`; every size class over 8 bytes is a multiple of 16), and to
//! 8 for sizes 1 to 8: at least the natural alignment of its size. So a request whose
//! alignment is at most 16 and at most its size gets a plain block, as Rust's own `System`
//! allocator does with `malloc`. Any other
//! request goes to `MiMalloc`. Blocks from either are freed by `mi_free`.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use mimalloc::MiMalloc;

/// The alignment every mimalloc block of at least that size has (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

// The allocation functions of the mimalloc library that `mimalloc` links.
unsafe extern "C" {
    fn mi_malloc(size: usize) -> *mut c_void;
    fn mi_zalloc(size: usize) -> *mut c_void;
    fn mi_realloc(p: *mut c_void, size: usize) -> *mut c_void;
}

/// mimalloc, with plain blocks where their alignment is enough (see the module doc).
#[derive(Debug, Default, Clone, Copy)]
pub struct Allocator;

/// A plain block of `size` bytes has the alignment `align` asks for.
fn plain(align: usize, size: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: each method returns a block of mimalloc's, of the size asked for, aligned as the
// layout asks (plain blocks only where `plain` holds, see the module doc; `MiMalloc`
// otherwise), or null on failure; `realloc` keeps the contents up to the smaller size
// (`mi_realloc` and `MiMalloc::realloc` both do); every block is mimalloc's, so `MiMalloc`'s
// `dealloc` (`mi_free`) frees it whichever way it was made.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            // SAFETY: no precondition; the size is not zero (`plain`).
            unsafe { mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            // SAFETY: as in `alloc`.
            unsafe { mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's layout.
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a block of mimalloc's (see above).
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            // SAFETY: `ptr` is a live block of mimalloc's; the new size is not zero.
            unsafe { mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: the caller's block, layout and size, as `GlobalAlloc::realloc` requires.
            unsafe { MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size up to 600 bytes (and some larger) with every alignment up to 4 KiB: blocks
    /// aligned as asked, zeroed when asked, contents kept by growing and shrinking.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_contents() {
        let a = Allocator;
        let sizes = (1..=600).chain([1000, 4096, 5000, 65_536, 300_001]);
        for size in sizes {
            for shift in 0..=12 {
                let align = 1usize << shift;
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero size; each block is written within its size, then freed
                // once with the layout it has.
                unsafe {
                    let p = a.alloc_zeroed(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    assert!((0..size).all(|i| *p.add(i) == 0), "zeroed, size {size}");
                    for i in 0..size {
                        *p.add(i) = (i % 251) as u8;
                    }
                    let grown = a.realloc(p, layout, size * 2 + 1);
                    assert_eq!(
                        grown as usize % align,
                        0,
                        "grown, size {size}, align {align}"
                    );
                    assert!((0..size).all(|i| *grown.add(i) == (i % 251) as u8));
                    let grown_layout = Layout::from_size_align(size * 2 + 1, align).expect("l");
                    let shrunk = a.realloc(grown, grown_layout, size.div_ceil(2));
                    assert_eq!(shrunk as usize % align, 0, "shrunk, size {size}");
                    assert!((0..size.div_ceil(2)).all(|i| *shrunk.add(i) == (i % 251) as u8));
                    a.dealloc(
                        shrunk,
                        Layout::from_size_align(size.div_ceil(2), align).expect("l"),
                    );
                    let q = a.alloc(layout);
                    assert_eq!(q as usize % align, 0, "alloc, size {size}, align {align}");
                    a.dealloc(q, layout);
                }
            }
        }
    }
}
