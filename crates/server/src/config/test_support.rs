//! Helpers of the configuration's unit tests.

use std::collections::HashMap;

use super::Config;

pub(super) const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Environment variables, and substrings the error must have.
pub(super) type EnvCase<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

pub(super) fn no_env(_: &str) -> Option<String> {
    None
}

pub(super) fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| vars.get(k).cloned()
}

pub(super) fn parse(text: &str) -> Config {
    match Config::parse(text, &no_env) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n--- in ---\n{text}"),
    }
}

pub(super) fn parse_err(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    match Config::parse(text, env) {
        Ok(c) => panic!("parsed, expected an error: {c:?}\n--- in ---\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// A destination with everything required, plus `extra` lines.
pub(super) fn dest(name: &str, write_key: &str, extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"{name}\"\napi_key = \"{KEY}\"\nwrite_keys = [\"{write_key}\"]\n{extra}\n"
    )
}
