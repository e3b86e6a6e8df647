//! Test support shared by the crates' integration tests that drive outside programs (the
//! official Segment SDKs, Segment's own mapping-kit in Node): installing pinned packages once
//! into a cache, and running child processes with a deadline. Every failure is a message that
//! says what is missing.

#[cfg(feature = "browser")]
pub mod browser;
mod install;
#[cfg(feature = "postgres")]
pub mod postgres;
mod process;

pub use install::{INSTALL_TIMEOUT, cached_install, npm_ci, version_of};
pub use process::{Finished, expect_success, run, run_with_input};
