//! The README as a new user reads it: every link leads to a file of the repository (or a
//! heading of the README), every environment variable the programs read is documented, and it
//! says how to install the command.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// The targets of the Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lowercase, spaces to '-', other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_link_leads_somewhere_in_the_repository() {
    let text = readme();
    let anchors: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();
    let targets = link_targets(&text);
    assert!(targets.len() >= 3, "links found: {targets:?}");
    for t in targets {
        if t.starts_with("http://") || t.starts_with("https://") {
            continue;
        }
        if let Some(a) = t.strip_prefix('#') {
            assert!(anchors.iter().any(|x| x == a), "no heading for #{a}");
            continue;
        }
        let path = t.split('#').next().unwrap_or_default();
        assert!(
            !path.starts_with('/') && !path.starts_with(".."),
            "link outside the repository: {t}"
        );
        assert!(root().join(path).exists(), "link to a missing file: {t}");
    }
    assert!(
        !text.contains("../"),
        "the README points outside the repository"
    );
}

#[test]
fn every_environment_variable_is_documented() {
    use server::config::*;
    let text = readme();
    let mut vars: Vec<String> = [
        LISTEN_ENV,
        API_KEY_ENV,
        PROJECT_TYPE_ENV,
        REGION_ENV,
        BASE_URL_ENV,
        WRITE_KEYS_ENV,
        ADMIN_TOKEN_ENV,
        WEBHOOK_SECRET_ENV,
    ]
    .iter()
    .map(|v| v.to_string())
    .collect();
    // Variables read by name anywhere in the workspace's Rust code.
    let mut stack = vec![root().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let code = std::fs::read_to_string(&p).expect("read");
                for call in ["env::var(\"", "env::var_os(\"", "env_usize(\""] {
                    for (i, _) in code.match_indices(call) {
                        let name: String = code[i + call.len()..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            vars.push(name);
                        }
                    }
                }
            }
        }
    }
    assert!(vars.iter().any(|v| v == "CRASH_EVENTS"), "{vars:?}");
    for v in &vars {
        assert!(text.contains(&format!("`{v}`")), "{v} is not in the README");
    }
    for key in [
        "api_key_env",
        "write_keys_env",
        "webhook_secret_env",
        "admin_token_env",
    ] {
        assert!(
            text.contains(&format!("`{key}`")),
            "{key} is not in the README"
        );
    }
}

#[test]
fn it_says_how_to_install_the_command() {
    assert!(readme().contains("cargo install --path crates/cli"));
    assert!(root().join("crates/cli/Cargo.toml").exists());
}
