//! The memory allocator of the `iterable-lists` binary and of the benchmark harness (which
//! runs the planner as the service does): mimalloc ([`Allocator`]: plain blocks where their
//! alignment is enough, `global.rs`), with the settings [`configure`] applies at the start of
//! `main`.
//!
//! Why these settings (BENCHMARKS.md, "Sustained load and memory"): with mimalloc's defaults
//! the service's resident memory (RSS) grew for as long as load lasted, to about 400 MiB after
//! 3,000,000 events, while the glibc allocator held about 120 MiB for the same run. Two
//! defaults keep memory that the service no longer uses:
//!
//! - **Transparent huge pages.** mimalloc asks for them on its arenas (`MADV_HUGEPAGE`). It
//!   gives freed memory back in pieces smaller than a huge page, which splits the huge page;
//!   the kernel's khugepaged then merges the pieces back into a whole huge page, filling the
//!   freed part with zeros (with its default `max_ptes_none` of 511, one page in use out of
//!   512 is enough), so memory given back comes back as resident, run after run of the
//!   scanner. [`configure`] turns huge pages off for the process (`PR_SET_THP_DISABLE`, which
//!   also covers the arena mimalloc reserved before `main`) and for mimalloc's later arenas.
//! - **Purge delay.** Freed pages are returned to the OS only after they stayed unused for
//!   a delay (1 s by default). Under a steady load, each thread's heap cycles through fresh
//!   pages faster than that, so the delay keeps a large unused margin resident.
//!   [`PURGE_DELAY_MS`] shortens it.
//!
//! The option numbers are those of mimalloc 3.3 (`mimalloc.h`, `mi_option_e`); a test fails
//! when the bundled mimalloc is another version, so that they are checked again.

use std::ffi::{c_int, c_long};

mod global;

pub use global::Allocator;
pub use mimalloc::MiMalloc;

/// How long a freed page stays resident before mimalloc returns it to the OS, milliseconds.
pub const PURGE_DELAY_MS: c_long = 100;

/// `mi_option_purge_delay` and `mi_option_allow_thp` in mimalloc 3.3's `mi_option_e`.
const MI_OPTION_PURGE_DELAY: c_int = 15;
const MI_OPTION_ALLOW_THP: c_int = 43;
/// The mimalloc version these numbers belong to (`MI_MALLOC_VERSION`).
pub const MIMALLOC_VERSION: c_int = 30302;

// The functions of the mimalloc library that `mimalloc` (through `libmimalloc-sys`) links.
unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_version() -> c_int;
}

/// Applies the settings above; call it first thing in `main`, before other threads start.
pub fn configure() {
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag of this process; mi_option_set
    // writes an option that mimalloc reads atomically, with numbers checked by the test
    // below against the linked mimalloc's version.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        mi_option_set(MI_OPTION_ALLOW_THP, 0);
        mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// The settings in force: whether huge pages are allowed, and the purge delay in ms.
pub fn settings() -> (bool, c_long) {
    // SAFETY: reading options has no precondition.
    unsafe {
        (
            mi_option_get(MI_OPTION_ALLOW_THP) != 0,
            mi_option_get(MI_OPTION_PURGE_DELAY),
        )
    }
}

/// The linked mimalloc's version (`MI_MALLOC_VERSION`, e.g. 30302 for 3.3.2).
pub fn version() -> c_int {
    // SAFETY: no precondition.
    unsafe { mi_version() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static GLOBAL: Allocator = Allocator;

    #[test]
    fn the_option_numbers_are_those_of_the_linked_mimalloc() {
        assert_eq!(
            version(),
            MIMALLOC_VERSION,
            "another mimalloc: check the option numbers in crates/allocator against its mimalloc.h"
        );
    }

    #[test]
    fn configure_turns_huge_pages_off_and_shortens_the_purge_delay() {
        // mimalloc's defaults, before.
        assert_eq!(settings(), (true, 1000));
        configure();
        assert_eq!(settings(), (false, PURGE_DELAY_MS));
        // SAFETY: reading this process's flag has no precondition.
        let thp_disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(thp_disabled, 1);
    }
}
