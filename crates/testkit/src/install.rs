//! Installing pinned packages once: a directory holds a fresh install unless its marker file
//! names exactly what is wanted (the pins, the tool versions); a lock file keeps concurrent
//! test processes from installing at the same time.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::process::{expect_success, run};

/// How long one install step may take.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs a short `--version` style command; its trimmed stdout (or stderr).
pub fn version_of(program: &str, args: &[&str], needs: &str) -> Result<String, String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = run(cmd, Duration::from_secs(60), program, needs)?;
    if !out.ok {
        return Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            out.stderr
        ));
    }
    let text = if out.stdout.trim().is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    Ok(text.trim().to_string())
}

/// Makes `dir` hold a fresh install unless its marker file says it already holds `marker`.
pub fn cached_install(
    dir: &Path,
    marker: &str,
    what: &str,
    install: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let marker_path = dir.join(".installed-by-tests");
    let lock_path = dir.with_extension("lock");
    let _lock = InstallLock::acquire(&lock_path)?;
    if fs::read_to_string(&marker_path).is_ok_and(|m| m == marker) {
        return Ok(());
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("remove {}: {e}", dir.display())),
    }
    let started = Instant::now();
    install()?;
    fs::write(&marker_path, marker).map_err(|e| format!("write {}: {e}", marker_path.display()))?;
    eprintln!(
        "installed the {what} into {} in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `npm ci` of `package_dir`'s package.json and package-lock.json into `dir` (which then holds
/// node_modules), unless `dir` already holds that install. Checks that node is at least
/// `min_node_major`; `needs` says what the tests need when something is missing.
pub fn npm_ci(
    package_dir: &Path,
    dir: &Path,
    what: &str,
    min_node_major: u32,
    needs: &str,
) -> Result<PathBuf, String> {
    let node = version_of("node", &["--version"], needs)?;
    let major: u32 = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("node --version said {node:?}"))?;
    if major < min_node_major {
        return Err(format!(
            "node {node} is too old: the {what} need node >= {min_node_major} ({needs})"
        ));
    }
    let npm = version_of("npm", &["--version"], needs)?;
    let read = |name: &str| {
        let path = package_dir.join(name);
        fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))
    };
    let package = read("package.json")?;
    let lock = read("package-lock.json")?;
    let marker = format!("node {node}, npm {npm}\n{package}\n{lock}");
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    cached_install(dir, &marker, what, || {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        for (name, text) in [("package.json", &package), ("package-lock.json", &lock)] {
            fs::write(dir.join(name), text).map_err(|e| format!("write {name}: {e}"))?;
        }
        let mut ci = Command::new("npm");
        ci.args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--ignore-scripts",
        ])
        .current_dir(dir);
        expect_success(run(ci, INSTALL_TIMEOUT, "npm ci", needs)?, "npm ci")
    })?;
    Ok(dir.to_path_buf())
}

/// A lock file created with `create_new`, so that test processes sharing the cache (as under
/// cargo-nextest) install one at a time. A lock left by a process that died is taken over.
pub(crate) struct InstallLock(PathBuf);

impl InstallLock {
    pub(crate) fn acquire(path: &Path) -> Result<InstallLock, String> {
        let deadline = Instant::now() + INSTALL_TIMEOUT + Duration::from_secs(60);
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(InstallLock(path.to_path_buf()));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if Self::is_stale(path) {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    if Instant::now() > deadline {
                        return Err(format!(
                            "waited too long for {} (remove it if no test is running)",
                            path.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(format!("create {}: {e}", path.display())),
            }
        }
    }

    /// Its process is gone (where /proc tells), or it is older than any install could take.
    fn is_stale(path: &Path) -> bool {
        let owner_gone = fs::read_to_string(path)
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_some_and(|pid| {
                Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
            });
        let too_old = fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > INSTALL_TIMEOUT * 2);
        owner_gone || too_old
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
