//! Secrets (tokens, API keys, write keys, shared secrets): the [`Secret`] type that never
//! prints its value, and how a secret is read, from the file (`api_key`) or from the
//! environment variable its `_env` twin names (`api_key_env`), with or without
//! [`Secrets::Required`].

use std::fmt;
use std::ops::Range;

use toml::Spanned;

use super::error::{Place, R};
use super::raw::RawDestination;
use super::values::{EnvName, Text};

/// A secret string (token, write key, shared secret). `Debug` and `Display` print
/// `<redacted>`; only [`Secret::expose`] gives the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it (an HMAC key, an outgoing header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` equals the secret, in time that does not depend on where they
    /// differ (only on the length, which is not secret enough to matter here).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if expected.len() != candidate.len() {
            return false;
        }
        let diff = expected
            .iter()
            .zip(candidate)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Whether a configuration is loaded with its secrets (API keys, write keys, webhook secrets,
/// the admin token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Every secret must be set: for running the service and for `check`.
    Required,
    /// For commands that only read the store (`status`, `events show`): a secret whose
    /// environment variable is unset or empty is left out (an API key is left empty), a
    /// destination needs no write key, and without a file the embedded destination exists
    /// even when [`super::API_KEY_ENV`] is unset.
    Optional,
}

/// How environment variables are read (the process environment, or a closure in tests), and
/// whether the secrets among them must be set.
#[derive(Clone, Copy)]
pub(super) struct Env<'e> {
    pub(super) var: &'e dyn Fn(&str) -> Option<String>,
    pub(super) secrets: Secrets,
}

impl Env<'_> {
    /// Whether a secret given by the variable `key_env` (when the file names one) may be
    /// missing.
    pub(super) fn may_lack<T>(&self, key_env: &Option<T>) -> bool {
        self.secrets == Secrets::Optional && key_env.is_some()
    }
}

fn is_env_name(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// The trimmed, non-empty value of the variable `name`; the error names the variable only.
fn env_var(env: Env<'_>, name: &str) -> Result<String, String> {
    let name = name.trim();
    if !is_env_name(name) {
        return Err(format!("{name:?} is not an environment variable name"));
    }
    match (env.var)(name) {
        None => Err(format!("environment variable {name} is not set")),
        Some(v) if v.trim().is_empty() => Err(format!("environment variable {name} is empty")),
        Some(v) => Ok(v.trim().to_string()),
    }
}

/// [`env_var`] of a secret: with [`Secrets::Optional`], an unset or empty variable is `None`.
fn env_secret(env: Env<'_>, name: &str) -> Result<Option<String>, String> {
    match env_var(env, name) {
        Err(_) if env.secrets == Secrets::Optional && is_env_name(name) => Ok(None),
        other => other.map(Some),
    }
}

/// A write key is sent as an HTTP Basic user name, so it cannot hold `:` or whitespace.
pub(super) fn check_write_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("must not be empty")
    } else if key
        .chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        Err(
            "must not contain ':', whitespace or control characters (it is sent as an HTTP Basic user name)",
        )
    } else {
        Ok(())
    }
}

/// Write keys as read, each with how a message names it and where it is.
pub(super) type LabeledKeys = Vec<(Secret, String, Range<usize>)>;

impl Place {
    /// A secret given as `key` or as `key_env` (an environment variable's name), at most one.
    /// Surrounding whitespace is dropped; an empty value is an error. No message holds it.
    pub(super) fn secret(
        &self,
        (key, direct): (&str, &Option<Spanned<Text>>),
        (key_env, var): (&str, &Option<Spanned<EnvName>>),
        env: Env<'_>,
    ) -> R<Option<Secret>> {
        match (direct, var) {
            (Some(_), Some(var)) => Err(self.fail(
                key_env,
                var.span(),
                format!("set {} or {}, not both", self.key(key), self.key(key_env)),
            )),
            (Some(value), None) => {
                let text = value.get_ref().0.trim();
                if text.is_empty() {
                    return Err(self.fail(key, value.span(), "must not be empty"));
                }
                Ok(Some(Secret::new(text)))
            }
            (None, Some(var)) => {
                let value = env_secret(env, &var.get_ref().0)
                    .map_err(|p| self.fail(key_env, var.span(), p))?;
                Ok(value.map(Secret::new))
            }
            (None, None) => Ok(None),
        }
    }

    /// A destination's API key (`table`: the destination's span, for "required"), empty
    /// when it is given by a variable that is unset and may be.
    pub(super) fn api_key(
        &self,
        raw: &RawDestination,
        table: Range<usize>,
        env: Env<'_>,
    ) -> R<Secret> {
        let key = self.secret(
            ("api_key", &raw.api_key),
            ("api_key_env", &raw.api_key_env),
            env,
        )?;
        match key {
            Some(key) => Ok(key),
            // Only the secrets given by variable may be missing, and only when they are optional.
            None if env.may_lack(&raw.api_key_env) => Ok(Secret::new("")),
            None => Err(self.fail(
                "api_key",
                table,
                "required (or api_key_env, the name of an environment variable that holds it)",
            )),
        }
    }

    /// How senders reach a destination: its write keys and its webhook secret, at least one
    /// of them unless those given by variable may be missing (`table`: the destination's span).
    pub(super) fn write_access(
        &self,
        raw: &RawDestination,
        table: Range<usize>,
        env: Env<'_>,
    ) -> R<(LabeledKeys, Option<Secret>)> {
        let keys = self.write_keys(
            raw.write_keys.as_ref().map(|k| k.0.as_slice()),
            &raw.write_keys_env,
            env,
        )?;
        let webhook_secret = self.secret(
            ("webhook_secret", &raw.webhook_secret),
            ("webhook_secret_env", &raw.webhook_secret_env),
            env,
        )?;
        if keys.is_empty()
            && webhook_secret.is_none()
            && !env.may_lack(&raw.write_keys_env)
            && !env.may_lack(&raw.webhook_secret_env)
        {
            return Err(self.fail(
                "write_keys",
                table,
                "required: at least one write key (in write_keys or write_keys_env), unless \
                 webhook_secret is set",
            ));
        }
        Ok((keys, webhook_secret))
    }

    /// `write_keys` of the file, then those of the variable `write_keys_env` names
    /// (comma-separated), each checked with [`check_write_key`].
    fn write_keys(
        &self,
        listed: Option<&[Spanned<Text>]>,
        var: &Option<Spanned<EnvName>>,
        env: Env<'_>,
    ) -> R<LabeledKeys> {
        let mut keys = Vec::new();
        for (i, item) in listed.unwrap_or_default().iter().enumerate() {
            let label = format!("write_keys[{i}]");
            let key = &item.get_ref().0;
            check_write_key(key).map_err(|p| self.fail(&label, item.span(), p))?;
            keys.push((Secret::new(key.as_str()), label, item.span()));
        }
        let Some(var) = var else {
            return Ok(keys);
        };
        let (name, span) = (var.get_ref().0.as_str(), var.span());
        let Some(value) =
            env_secret(env, name).map_err(|p| self.fail("write_keys_env", span.clone(), p))?
        else {
            return Ok(keys);
        };
        if value.split(',').all(|k| k.trim().is_empty()) {
            return Err(self.fail(
                "write_keys_env",
                span,
                format!("environment variable {} holds no key", name.trim()),
            ));
        }
        for (i, key) in value
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
        {
            let label = format!("write_keys_env (key {} of {})", i + 1, name.trim());
            check_write_key(key).map_err(|p| self.fail(&label, span.clone(), p))?;
            keys.push((Secret::new(key), label, span.clone()));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::*;
    use crate::config::*;

    #[test]
    fn secret_matching() {
        let s = Secret::new("wk_live_123");
        assert!(s.matches(b"wk_live_123"));
        for other in [
            &b"wk_live_124"[..],
            b"wk_live_12",
            b"wk_live_1234",
            b"",
            b"WK_LIVE_123",
        ] {
            assert!(!s.matches(other), "{other:?}");
        }
        assert!(Secret::new("").matches(b""));
        assert_eq!(s.to_string(), "<redacted>");
        assert_eq!(format!("{s:?}"), "<redacted>");
    }

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let secrets = [
            "sekrit-api-key",
            "sekrit-write",
            "sekrit-hook",
            "sekrit-admin",
        ];
        let text = format!(
            "admin_token = \"{}\"\n[[destination]]\nname = \"p\"\napi_key = \"{}\"\n\
             write_keys = [\"{}\"]\nwebhook_secret = \"{}\"\n",
            secrets[3], secrets[0], secrets[1], secrets[2]
        );
        let c = parse(&text);
        let debug = format!("{c:?} {c:#?}");
        for s in secrets {
            assert!(!debug.contains(s), "{s} in {debug}");
        }
        assert_eq!(format!("{}", c.admin_token.as_ref().unwrap()), "<redacted>");
        assert_eq!(
            format!("{:?}", c.destinations[0].write_keys[0]),
            "<redacted>"
        );

        // Errors about secrets, and syntax errors on their lines, do not repeat them.
        let broken = [
            text.replace("sekrit-api-key\"", "sekrit-api-key"),
            text.replace("write_keys = [", "write_keys = [\"sekrit-write\", "),
            format!("{text}{}", dest("q", "sekrit-write", "")),
            text.replace("api_key =", "api_key_env = \"X\"\napi_key ="),
            text.replace("admin_token =", "admin_token_env = \"X\"\nadmin_token ="),
            text.replace("\"sekrit-write\"", "\"sekrit-write:x\""),
            text.replace("\"sekrit-api-key\"", "[\"sekrit-api-key\"]"),
        ];
        for b in &broken {
            let msg = parse_err(b, &|_| Some("from-env".into()));
            for s in secrets {
                assert!(!msg.contains(s), "{s} in {msg:?}");
            }
        }
        let env = env_of(&[
            (API_KEY_ENV, "sekrit-api-key"),
            (WRITE_KEYS_ENV, "sekrit-write:"),
        ]);
        let msg = Config::embedded(&env).unwrap_err().to_string();
        assert!(!msg.contains("sekrit"), "{msg}");
    }

    #[test]
    fn secrets_from_the_environment() {
        let env = env_of(&[
            ("ITERABLE_API_KEY", &format!(" {KEY}\n")),
            ("WKS", "wk_1, wk_2,,wk_3 "),
            ("HOOK", "hook-secret"),
            ("ADMIN", "admin-secret"),
            (LISTEN_ENV, "127.0.0.1:0"),
        ]);
        let text = r#"
listen = "127.0.0.1:9000"
admin_token_env = "ADMIN"
[[destination]]
name = "prod"
api_key_env = "ITERABLE_API_KEY"
write_keys = ["wk_0"]
write_keys_env = "WKS"
webhook_secret_env = "HOOK"
"#;
        let c = Config::parse(text, &env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:0", "{LISTEN_ENV} wins");
        assert_eq!(c.admin_token.unwrap().expose(), "admin-secret");
        let d = &c.destinations[0];
        assert_eq!(d.api_key.expose(), KEY);
        let keys: Vec<&str> = d.write_keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["wk_0", "wk_1", "wk_2", "wk_3"]);
        assert_eq!(d.webhook_secret.as_ref().unwrap().expose(), "hook-secret");

        // A webhook secret alone is enough to receive events (on the webhook).
        let c = Config::parse(
            "[[destination]]\nname = \"h\"\napi_key = \"k\"\nwebhook_secret_env = \"HOOK\"",
            &env,
        )
        .unwrap();
        assert!(c.destinations[0].write_keys.is_empty());
    }

    #[test]
    fn reading_the_store_needs_no_secret() {
        let text = r#"
admin_token_env = "ADMIN"
[[destination]]
name = "prod"
api_key_env = "ITERABLE_API_KEY"
write_keys_env = "WKS"
webhook_secret_env = "HOOK"
[[destination]]
name = "other"
api_key_env = "OTHER_KEY"
write_keys_env = "OTHER_WKS"
"#;
        // Serving needs every secret, and says which variable is missing.
        let msg = parse_err(text, &no_env);
        assert!(
            msg.contains("admin_token_env: environment variable ADMIN is not set"),
            "{msg}"
        );
        let msg = parse_err(text, &env_of(&[("ADMIN", "a")]));
        assert!(
            msg.contains("api_key_env: environment variable ITERABLE_API_KEY is not set"),
            "{msg}"
        );
        // Reading the store does not: unset (or empty) variables leave the secrets out.
        let empty = env_of(&[("WKS", " "), ("OTHER_KEY", KEY)]);
        for env in [&no_env as &dyn Fn(&str) -> Option<String>, &empty] {
            let c = Config::parse_with(text, env, Secrets::Optional).unwrap();
            assert!(c.admin_token.is_none());
            let names: Vec<&str> = c.destinations.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, ["prod", "other"]);
            assert_eq!(c.destinations[0].api_key.expose(), "");
            assert!(c.destinations[0].write_keys.is_empty());
            assert!(c.destinations[0].webhook_secret.is_none());
        }
        // Set variables are read and checked as always.
        let c = Config::parse_with(text, &empty, Secrets::Optional).unwrap();
        assert_eq!(c.destinations[1].api_key.expose(), KEY);
        let bad = env_of(&[("WKS", "a:b")]);
        let err = Config::parse_with(text, &bad, Secrets::Optional)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("write_keys_env (key 1 of WKS): must not contain ':'"),
            "{err}"
        );
        // Only secrets given by variable may be missing: a key absent from the file, or a
        // variable name that cannot be one, is still an error.
        for (text, want) in [
            (
                "[[destination]]\nname = \"p\"\nwrite_keys = [\"w\"]",
                "api_key: required",
            ),
            (
                "[[destination]]\nname = \"p\"\napi_key = \"k\"",
                "write_keys: required",
            ),
            (
                "[[destination]]\nname = \"p\"\napi_key_env = \"A=B\"\nwrite_keys = [\"w\"]",
                "is not an environment variable name",
            ),
        ] {
            let err = Config::parse_with(text, &no_env, Secrets::Optional)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }

        // Without a file, the one destination is there without ITERABLE_API_KEY.
        let optional = |var: &dyn Fn(&str) -> Option<String>| {
            embedded(Env {
                var,
                secrets: Secrets::Optional,
            })
        };
        let c = optional(&no_env).unwrap();
        assert_eq!(c.destinations.len(), 1);
        assert_eq!(c.destinations[0].name, EMBEDDED_DESTINATION);
        assert_eq!(c.destinations[0].api_key.expose(), "");
        let c = optional(&|name| (name == API_KEY_ENV).then(|| KEY.into())).unwrap();
        assert_eq!(c.destinations[0].api_key.expose(), KEY);
        assert!(c.destinations[0].write_keys.is_empty());
        assert!(Config::embedded(&|name| (name == API_KEY_ENV).then(|| KEY.into())).is_err());
    }
}
