//! Which binary is the service under test: this workspace's `iterable-lists`, built by cargo
//! before any part runs (a no-op when it is up to date), or the file given with
//! `--service-bin`.
//!
//! Building it rather than looking for `target/release/iterable-lists` means the binary
//! measured is the one of the sources checked out: never missing on a fresh clone, never stale
//! after an edit. It is built in this program's profile (`--release` when this program is a
//! release build), from the workspace this program was compiled in, with the cargo that ran
//! this program (`$CARGO`, set by `cargo run`) or else the `cargo` on the `PATH`.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The package and binary of the service.
const PACKAGE: &str = "iterable-lists";

/// The service binary to measure: `given`, or this workspace's, built now.
pub fn service_binary(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(path) if path.is_file() => Ok(path.to_path_buf()),
        Some(path) => bail!(
            "--service-bin {}: no such file (build the service with `{}`)",
            path.display(),
            build_command()
        ),
        None => build(),
    }
}

/// The arguments that select this program's profile.
fn profile_args() -> &'static [&'static str] {
    if cfg!(debug_assertions) {
        &[]
    } else {
        &["--release"]
    }
}

/// The build command, as a user would type it.
fn build_command() -> String {
    let mut words = vec!["cargo", "build"];
    words.extend(profile_args());
    words.extend(["-p", PACKAGE]);
    words.join(" ")
}

/// Builds the service with cargo and returns the path cargo reports for its binary.
fn build() -> Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} not found: the service is built from the workspace this program was compiled \
             in; build it elsewhere and pass --service-bin FILE",
            manifest.display()
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    eprintln!("the service under test: {}", build_command());
    let mut command = Command::new(&cargo);
    // What `cargo run` told this program about itself is no input of the service's build: left
    // in, build scripts that watch such variables (ring's watches CARGO_PKG_NAME) would rebuild,
    // and again at the next `cargo run`, each time.
    for (name, _) in std::env::vars_os() {
        if set_by_cargo_for_this_program(&name) {
            command.env_remove(name);
        }
    }
    // Diagnostics rendered on stderr as usual; the artifact messages, as JSON, on stdout.
    let mut child = command
        .arg("build")
        .args(profile_args())
        .args(["-p", PACKAGE, "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "running {} to build the service (or pass --service-bin FILE)",
                cargo.to_string_lossy()
            )
        })?;
    let mut executable = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            executable = executable.or(artifact_executable(&line?));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "`{}` failed ({status}): the service under test could not be built",
            build_command()
        );
    }
    executable.with_context(|| {
        format!(
            "`{}` reported no `{PACKAGE}` binary (pass --service-bin FILE)",
            build_command()
        )
    })
}

/// Whether `name` is a variable cargo sets for the crate it builds or runs (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, ...), as opposed to the user's settings (`CARGO_HOME`,
/// `CARGO_TARGET_DIR`, `CARGO_PROFILE_*`, ...), which the service's build must see.
fn set_by_cargo_for_this_program(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CFG_"]
        .iter()
        .any(|p| name.starts_with(p))
        || [
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .contains(&name)
}

/// The path of the service binary, if `line` is cargo's JSON message of its artifact.
fn artifact_executable(line: &str) -> Option<PathBuf> {
    let m: Value = serde_json::from_str(line).ok()?;
    let target = &m["target"];
    let is_bin = target["kind"]
        .as_array()
        .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
    if m["reason"] != "compiler-artifact" || target["name"] != PACKAGE || !is_bin {
        return None;
    }
    m["executable"].as_str().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_the_artifact_cargo_reports_for_the_service() {
        let artifact = |reason: &str, name: &str, kind: &str, exe: &str| {
            serde_json::json!({"reason": reason, "package_id": "x",
                               "target": {"name": name, "kind": [kind]},
                               "executable": exe, "fresh": true})
            .to_string()
        };
        let cases = [
            (
                artifact("compiler-artifact", PACKAGE, "bin", "/t/release/iterable-lists"),
                Some("/t/release/iterable-lists"),
            ),
            // Another binary, the service's libraries, or not an artifact at all.
            (
                artifact("compiler-artifact", "iterable-emulator", "bin", "/t/e"),
                None,
            ),
            (artifact("compiler-artifact", PACKAGE, "lib", "/t/l"), None),
            (artifact("build-script-executed", PACKAGE, "bin", "/t/b"), None),
            (
                r#"{"reason":"compiler-artifact","target":{"name":"iterable-lists","kind":["bin"]},"executable":null}"#.into(),
                None,
            ),
            (r#"{"reason":"build-finished","success":true}"#.into(), None),
            ("Compiling iterable-lists".into(), None),
        ];
        for (line, want) in cases {
            assert_eq!(
                artifact_executable(&line),
                want.map(PathBuf::from),
                "{line}"
            );
        }
    }

    #[test]
    fn only_what_cargo_says_about_this_program_is_kept_from_the_build() {
        for (name, removed) in [
            ("CARGO_PKG_NAME", true),
            ("CARGO_PKG_VERSION_MAJOR", true),
            ("CARGO_MANIFEST_DIR", true),
            ("CARGO_MANIFEST_PATH", true),
            ("CARGO_CRATE_NAME", true),
            ("CARGO_BIN_NAME", true),
            ("CARGO_PRIMARY_PACKAGE", true),
            ("OUT_DIR", true),
            ("CARGO", false),
            ("CARGO_HOME", false),
            ("CARGO_TARGET_DIR", false),
            ("CARGO_PROFILE_RELEASE_DEBUG", false),
            ("CARGO_BUILD_JOBS", false),
            ("RUSTFLAGS", false),
            ("PATH", false),
        ] {
            assert_eq!(
                set_by_cargo_for_this_program(OsStr::new(name)),
                removed,
                "{name}"
            );
        }
    }
}
