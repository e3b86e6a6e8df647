//! What a configuration that cannot be used reports: [`ConfigError`], whose messages name the
//! file, the line and the key (`destination "prod": delivery.batch_size: ...`), and the
//! located failures ([`Fail`]) the readers return on the way there.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use thiserror::Error;

/// A configuration that cannot be used. Messages name the key (and the file and line when
/// there is one) and never contain a secret's value.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML.
    #[error("{}TOML syntax error: {message}", location(.file, Some(*.line), Some(*.column)))]
    Syntax {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// A key is unknown, missing or has an unusable value; `message` names it.
    #[error("{}{message}", location(.file, *.line, None))]
    Invalid {
        /// The file, when the problem is in one (not in an environment variable).
        file: Option<PathBuf>,
        /// 1-based line of the key or value, when it came from the file.
        line: Option<usize>,
        /// What is wrong, beginning with the key: `destination "prod": project_type: ...`.
        message: String,
    },
}

fn location(file: &Option<PathBuf>, line: Option<usize>, column: Option<usize>) -> String {
    match (file, line, column) {
        (Some(f), Some(l), Some(c)) => format!("{}:{l}:{c}: ", f.display()),
        (Some(f), Some(l), None) => format!("{}:{l}: ", f.display()),
        (Some(f), None, _) => format!("{}: ", f.display()),
        (None, Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (None, Some(l), None) => format!("line {l}: "),
        (None, None, _) => String::new(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count())
        + 1;
    (line, column)
}

/// A validation failure: where (a span of the text, when known; none for the environment)
/// and the full message.
#[derive(Debug)]
pub(super) struct Fail {
    pub(super) span: Option<Range<usize>>,
    pub(super) message: String,
}

/// What every reader returns.
pub(super) type R<T> = Result<T, Fail>;

/// `owner: key: problem`, `key: problem` at the top level, or the problem alone without a key.
pub(super) fn key_fail(
    owner: &str,
    key: &str,
    span: Option<Range<usize>>,
    problem: impl fmt::Display,
) -> Fail {
    let message = match (owner.is_empty(), key.is_empty()) {
        (true, true) => problem.to_string(),
        (true, false) => format!("{key}: {problem}"),
        (false, true) => format!("{owner}: {problem}"),
        (false, false) => format!("{owner}: {key}: {problem}"),
    };
    Fail { span, message }
}

/// "a string", "an integer", ...
pub(super) fn article(type_str: &str) -> String {
    match type_str.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => format!("an {type_str}"),
        _ => format!("a {type_str}"),
    }
}

/// Where a table is, for messages: the destination it belongs to (`destination "prod"`, or
/// empty at the top level) and its dotted path there (`delivery`, or empty).
#[derive(Debug, Clone, Default)]
pub(super) struct Place {
    pub(super) owner: String,
    pub(super) path: String,
}

impl Place {
    /// The top level of the file.
    pub(super) fn root() -> Self {
        Self::default()
    }

    /// The top of a destination, named `owner` in messages.
    pub(super) fn owner(owner: String) -> Self {
        Self {
            owner,
            path: String::new(),
        }
    }

    /// The table at `key` of this one.
    pub(super) fn nested(&self, key: &str) -> Self {
        Self {
            owner: self.owner.clone(),
            path: self.key(key),
        }
    }

    /// The dotted key of `key` in this table (`delivery.batch_size`).
    pub(super) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// `key`'s value (at `span`) cannot be used.
    pub(super) fn fail(&self, key: &str, span: Range<usize>, problem: impl fmt::Display) -> Fail {
        key_fail(&self.owner, &self.key(key), Some(span), problem)
    }

    /// The table itself: `owner: path: ` or less, for messages about its keys.
    pub(super) fn prefix(&self) -> String {
        match (self.owner.is_empty(), self.path.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{}: ", self.path),
            (false, true) => format!("{}: ", self.owner),
            (false, false) => format!("{}: {}: ", self.owner, self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::*;

    #[test]
    fn error_messages_name_the_key() {
        let env = env_of(&[("EMPTY", "  "), ("SET", "env-value"), ("COMMAS", " ,, ")]);
        let d = |extra: &str| dest("prod", "wk", extra);
        let cases: Vec<(String, Vec<&str>)> = vec![
            // Syntax.
            (
                "listen = \"127.0.0.1:8080\"\nlisten = 1".into(),
                vec!["line 2, column 1: TOML syntax error:", "duplicate key"],
            ),
            ("[storage\n".into(), vec!["line 1", "TOML syntax error"]),
            // Top level.
            (
                "listen = \"localhost\"".into(),
                vec![r#"line 1: listen: "localhost" is not an address like 127.0.0.1:8080"#],
            ),
            (
                "listen = 8080".into(),
                vec!["listen: expected a string, got an integer"],
            ),
            (
                "\nlisen = \"x\"".into(),
                vec![
                    r#"line 2: unknown key "lisen"; expected one of listen, storage"#,
                    r#"(did you mean "listen"?)"#,
                ],
            ),
            (
                "[storage]\nurl = \"postgres://u:pw@db:port/x\"".into(),
                vec!["line 2: storage.url: not a valid PostgreSQL URL"],
            ),
            (
                "[storage]\nurl = \"mysql://u:pw@db/x\"".into(),
                vec![r#"storage.url: unsupported scheme "mysql""#],
            ),
            (
                "[storage]\npath = \"x\"".into(),
                vec![r#"storage: unknown key "path"; expected one of url"#],
            ),
            (
                "[ingest]\nmax_event_bytes = 0".into(),
                vec!["ingest.max_event_bytes: must be at least 1, got 0"],
            ),
            (
                "[ingest]\nmax_batch_events = -5".into(),
                vec!["ingest.max_batch_events: must be at least 1, got -5"],
            ),
            (
                "[ingest]\nmax_batch = 5".into(),
                vec![r#"ingest: unknown key "max_batch"; expected one of max_event_bytes"#],
            ),
            (
                "admin_token = \"a\"\nadmin_token_env = \"SET\"".into(),
                vec!["admin_token_env: set admin_token or admin_token_env, not both"],
            ),
            (
                "admin_token_env = \"NOPE\"".into(),
                vec!["admin_token_env: environment variable NOPE is not set"],
            ),
            (
                "admin_token_env = \"EMPTY\"".into(),
                vec!["admin_token_env: environment variable EMPTY is empty"],
            ),
            (
                "admin_token = \"  \"".into(),
                vec!["admin_token: must not be empty"],
            ),
            (
                "[destination]\nname = \"x\"".into(),
                vec!["destination: expected [[destination]] tables, got a table"],
            ),
            // Destinations.
            (
                format!("{}[[destination]]\napi_key = \"k\"", d("")),
                vec!["destination[1]: name: required"],
            ),
            (
                d("").replace("\"prod\"", "\"\""),
                vec!["destination[0]: name: must not be empty"],
            ),
            (
                d("").replace("\"prod\"", "\"pr od\""),
                vec![
                    r#"destination[0]: name: "pr od" may only contain letters, digits, '_', '.' and '-'"#,
                ],
            ),
            (
                format!("{}{}", d(""), dest("prod", "wk2", "")),
                vec![
                    r#"line 7: destination[1]: name: "prod" is already the name of destination[0]"#,
                ],
            ),
            (
                d("linger = 5"),
                vec![
                    r#"line 5: destination "prod": unknown key "linger"; expected one of name, enabled"#,
                ],
            ),
            (
                d("project_type = \"email\""),
                vec![
                    r#"destination "prod": project_type: expected "hybrid" or "userId", got "email""#,
                ],
            ),
            (
                d("enabled = \"yes\""),
                vec![r#"destination "prod": enabled: expected true or false, got a string"#],
            ),
            (
                "[[destination]]\nname = \"prod\"\nwrite_keys = [\"wk\"]".into(),
                vec![r#"destination "prod": api_key: required (or api_key_env"#],
            ),
            (
                d("api_key_env = \"SET\""),
                vec![r#"destination "prod": api_key_env: set api_key or api_key_env, not both"#],
            ),
            (
                d("").replace("api_key = ", "api_key_env = \"NOPE\"\n#"),
                vec![r#"destination "prod": api_key_env: environment variable NOPE is not set"#],
            ),
            (
                d("").replace("api_key = ", "api_key_env = \"EMPTY\"\n#"),
                vec![r#"destination "prod": api_key_env: environment variable EMPTY is empty"#],
            ),
            (
                d("region = \"asia\""),
                vec![r#"destination "prod": region: expected "us" or "eu", got "asia""#],
            ),
            (
                d("region = \"us\"\nbase_url = \"http://x\""),
                vec![r#"destination "prod": base_url: set region or base_url, not both"#],
            ),
            (
                d("base_url = \"ftp://x\""),
                vec![
                    r#"destination "prod": base_url: expected an http:// or https:// URL, got "ftp://x""#,
                ],
            ),
            (
                d("").replace("write_keys = [\"wk\"]", ""),
                vec![r#"destination "prod": write_keys: required: at least one write key"#],
            ),
            (
                d("").replace("[\"wk\"]", "[\"wk\", 5]"),
                vec![r#"destination "prod": write_keys[1]: expected a string, got an integer"#],
            ),
            (
                d("").replace("[\"wk\"]", "\"wk\""),
                vec![
                    r#"destination "prod": write_keys: expected an array of strings, got a string"#,
                ],
            ),
            (
                d("").replace("[\"wk\"]", "[\"wk\", \"\"]"),
                vec![r#"destination "prod": write_keys[1]: must not be empty"#],
            ),
            (
                d("").replace("[\"wk\"]", "[\"w k\"]"),
                vec![r#"destination "prod": write_keys[0]: must not contain ':', whitespace"#],
            ),
            (
                d("").replace("[\"wk\"]", "[\"wk\", \"wk\"]"),
                vec![r#"destination "prod": write_keys[1]: the same key is given twice"#],
            ),
            (
                format!("{}{}", d(""), dest("staging", "wk", "")),
                vec![
                    r#"destination "staging": write_keys[0]: the same key is a write key of destination "prod""#,
                ],
            ),
            (
                d("write_keys_env = \"NOPE\""),
                vec![r#"destination "prod": write_keys_env: environment variable NOPE is not set"#],
            ),
            (
                d("write_keys_env = \"SET\"").replace("[\"wk\"]", "[\"env-value\"]"),
                vec![
                    r#"destination "prod": write_keys_env (key 1 of SET): the same key is given twice"#,
                ],
            ),
            (
                d("write_keys_env = \"COMMAS\""),
                vec![
                    r#"destination "prod": write_keys_env: environment variable COMMAS holds no key"#,
                ],
            ),
            (
                d("webhook_secret = \"\""),
                vec![r#"destination "prod": webhook_secret: must not be empty"#],
            ),
            (
                d("retl_sync_mode = \"sometimes\""),
                vec![
                    r#"destination "prod": retl_sync_mode: unknown reverse-ETL sync mode "sometimes""#,
                ],
            ),
            (
                d("verify_every = \"often\""),
                vec![
                    r#"destination "prod": verify_every: expected a period like "30m", "6h" or "1d""#,
                ],
            ),
            (
                d("[destination.audience_defaults]\nverify_every = \"1h\""),
                vec![r#"destination "prod": audience_defaults: unknown key "verify_every""#],
            ),
            (
                d("[destination.audiences.vip]\nverify_every = \"sometimes\""),
                vec![
                    r#"destination "prod": audiences.vip.verify_every: expected a period like"#,
                    r#"or "off""#,
                ],
            ),
            (
                d("verify_repair = \"yes\""),
                vec![r#"destination "prod": verify_repair"#],
            ),
            (
                d("on_list_deleted = \"keep\""),
                vec![
                    r#"destination "prod": on_list_deleted: expected "recreate" or "pause", got "keep""#,
                ],
            ),
            (
                d("mapping = { phone = { \"@path\" = \"$.traits.phone\" } }"),
                vec![r#"destination "prod": mapping: mapping key "phone" is not a field"#],
            ),
            (
                d("mapping = { email = { \"@nope\" = 1 } }"),
                vec![r#"destination "prod": mapping: invalid mapping"#],
            ),
            (
                d("mapping = { dataFields = { at = 1979-05-27 } }"),
                vec![
                    r#"destination "prod": mapping.dataFields.at: a TOML date has no JSON equivalent"#,
                ],
            ),
            (
                d("mapping = { dataFields = { x = [1, nan] } }"),
                vec![r#"destination "prod": mapping.dataFields.x[1]: infinite and NaN numbers"#],
            ),
            (
                d("mapping = '{\"email\": '"),
                vec![r#"destination "prod": mapping: not JSON"#],
            ),
            (
                d("mapping = 5"),
                vec![
                    r#"destination "prod": mapping: expected a table (or a JSON string), got an integer"#,
                ],
            ),
            (
                d("[destination.audience_defaults]\ncampaign = 5"),
                vec![
                    r#"destination "prod": audience_defaults: unknown key "campaign"; expected one of update_existing_users_only, channel_unsubscribe, campaign_id (did you mean "campaign_id"?)"#,
                ],
            ),
            (
                d("[destination.audiences.vip]\ncampaign_id = 0"),
                vec![
                    r#"destination "prod": audiences.vip.campaign_id: must be a whole positive number, got 0"#,
                ],
            ),
            (
                d("[destination.audiences.vip]\nchannel_unsubscribe = \"true\""),
                vec![
                    r#"destination "prod": audiences.vip.channel_unsubscribe: expected true or false, got a string"#,
                ],
            ),
            (
                d("[destination.audiences]\nvip = 1"),
                vec![r#"destination "prod": audiences.vip: expected a table, got an integer"#],
            ),
            (
                d("max_removal_ratio = 1.5"),
                vec![
                    r#"destination "prod": max_removal_ratio: must be a share between 0 and 1 (0.25 holds the removals once a quarter of an audience's members leave within the window; 1 turns the guard off), got 1.5"#,
                ],
            ),
            (
                d("max_removal_ratio = -0.1"),
                vec!["max_removal_ratio: must be a share between 0 and 1"],
            ),
            (
                d("max_removal_ratio = \"25%\""),
                vec![r#"max_removal_ratio: expected a number between 0 and 1, got a string"#],
            ),
            (
                d("[destination.delivery]\nlinger = 5"),
                vec![
                    r#"destination "prod": delivery: unknown key "linger"; expected one of batch_size"#,
                    r#"(did you mean "linger_ms"?)"#,
                ],
            ),
            (
                d("[destination.delivery]\nbatch_size = 1001"),
                vec![
                    r#"destination "prod": delivery.batch_size: must be between 1 and 1000, got 1001"#,
                ],
            ),
            (
                d("[destination.delivery]\nbatch_size = 0"),
                vec!["delivery.batch_size: must be between 1 and 1000, got 0"],
            ),
            (
                d("[destination.delivery]\nlinger_ms = 1001"),
                vec!["delivery.linger_ms: must be between 0 and 1000, got 1001"],
            ),
            (
                d("[destination.delivery]\nconcurrency = 65"),
                vec!["delivery.concurrency: must be between 1 and 64, got 65"],
            ),
            (
                d("[destination.delivery]\ntimeout_ms = 0"),
                vec!["delivery.timeout_ms: must be between 1 and 600000, got 0"],
            ),
            (
                d("[destination.delivery]\nmax_request_bytes = 5000000"),
                vec!["delivery.max_request_bytes: must be between 1024 and 4000000"],
            ),
            (
                d("[destination.delivery]\nconcurrency = 1.5"),
                vec!["delivery.concurrency: expected a whole number, got a float"],
            ),
            (
                d("[destination.delivery.rate_limits]\nsubscribe = \"fast\""),
                vec![
                    r#"destination "prod": delivery.rate_limits.subscribe: expected "N/s" or "N/min""#,
                ],
            ),
            (
                d("[destination.delivery.rate_limits]\nsubscribe = 20"),
                vec![
                    r#"delivery.rate_limits.subscribe: expected a string like "20/s", "5/min", "adaptive" or "off", got an integer"#,
                ],
            ),
            (
                d("[destination.delivery.rate_limits]\nsubscrbe = \"20/s\""),
                vec![
                    r#"delivery.rate_limits: unknown key "subscrbe"; expected one of get_lists"#,
                    r#"(did you mean "subscribe"?)"#,
                ],
            ),
        ];
        for (text, wants) in &cases {
            let msg = parse_err(text, &env);
            for want in wants {
                assert!(
                    msg.contains(want),
                    "message {msg:?}\nlacks {want:?}\n--- in ---\n{text}"
                );
            }
            assert!(!msg.contains(KEY), "{msg}");
            assert!(!msg.contains("env-value"), "env value in {msg}");
            assert!(!msg.contains("pw@"), "URL credentials in {msg}");
        }
    }
}
