//! The configuration reader: `Config::parse` of fuzzed TOML text, with every environment
//! variable it asks for unset or set to a fuzzed value, and `Config::embedded` with that
//! environment. No file, no network.
//!
//! Input: the TOML text, optionally followed by a `0xff` byte and the environment's value.
#![no_main]

use iterable_lists_fuzz::split_ff;
use libfuzzer_sys::fuzz_target;
use server::Config;

fuzz_target!(|data: &[u8]| {
    let (text, env) = split_ff(data);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let env = env.map(|value| String::from_utf8_lossy(value).into_owned());
    let env = |_: &str| env.clone();
    match Config::parse(text, &env) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(err) => {
            let message = err.to_string();
            assert!(!message.is_empty());
        }
    }
    if let Ok(config) = Config::embedded(&env) {
        let _ = format!("{config:?}");
    }
});
