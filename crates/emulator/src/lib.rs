//! An emulator of Iterable's list API for tests, demos and benchmarks: the endpoints, shapes,
//! errors, identity rules and rate limits of the real API, plus fault injection and inspection.
//!
//! Start it in-process on an ephemeral port:
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use iterable_emulator::{Emulator, EmulatorConfig, ProjectConfig, ProjectType};
//! let mut config = EmulatorConfig::default()
//!     .with_project(ProjectConfig::new(ProjectType::Hybrid, "0123456789abcdef0123456789abcdef"));
//! config.listen = "127.0.0.1:0".parse()?;
//! let emu = Emulator::start(config).await?;
//! println!("base URL {}", emu.url());
//! # Ok(()) }
//! ```

mod api;
pub mod clock;
pub mod config;
pub mod endpoint;
pub mod identity;
pub mod inspect;
pub mod project;
pub mod ratelimit;
pub mod reqlog;
pub mod rng;
mod routes;
mod server;
pub mod wire;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    ApiKey, ConfigError, EmulatorConfig, Faults, HttpConfig, ProjectConfig, ProjectType, Region,
};
pub use endpoint::Endpoint;
pub use inspect::{SeedList, SeedRequest, SeedResult, SeedUser};
pub use project::{ListType, MemberView, ProjectView};
pub use ratelimit::RateLimit;
pub use reqlog::{LogQuery, LoggedRequest};
pub use server::{Emulator, HARD_BODY_LIMIT, RunningEmulator, StartError};
