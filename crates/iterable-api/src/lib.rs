//! Iterable's list API as data, without I/O: request and response bodies, the API key, how an
//! error answer is classified and which list an audience maps to. The pure `destination` crate
//! and the HTTP client (`iterable`, which re-exports these at its own paths) both build on it.

pub mod api_key;
pub mod errors;
pub mod lists;
pub mod types;

pub use api_key::ApiKey;
