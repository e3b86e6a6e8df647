//! Child processes with a deadline: output collected on threads, killed when late, and a
//! program that cannot be found reported with what the tests need.

use std::io::{ErrorKind, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a child process ended, with everything it printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub ok: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with no stdin, collecting its output; kills it after `timeout`. A program that
/// cannot be found is an error that says `needs` (what the tests need on the PATH).
pub fn run(cmd: Command, timeout: Duration, what: &str, needs: &str) -> Result<Finished, String> {
    run_inner(cmd, None, timeout, what, needs)
}

/// As [`run`], writing `input` to the child's stdin (then closing it) from another thread.
pub fn run_with_input(
    cmd: Command,
    input: Vec<u8>,
    timeout: Duration,
    what: &str,
    needs: &str,
) -> Result<Finished, String> {
    run_inner(cmd, Some(input), timeout, what, needs)
}

/// `Ok` when the process exited 0, else an error holding its output.
pub fn expect_success(out: Finished, what: &str) -> Result<(), String> {
    if out.ok {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status, out.stderr, out.stdout
        ))
    }
}

type Buffer = Arc<Mutex<Vec<u8>>>;

fn collect(pipe: Option<Box<dyn Read + Send>>) -> (Buffer, std::thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let reader = std::thread::spawn(move || {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut sink) = sink.lock() {
                sink.extend_from_slice(&chunk[..n]);
            }
        }
    });
    (buf, reader)
}

fn text(b: &Buffer) -> String {
    b.lock()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn run_inner(
    mut cmd: Command,
    input: Option<Vec<u8>>,
    timeout: Duration,
    what: &str,
    needs: &str,
) -> Result<Finished, String> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        let program = cmd.get_program().to_string_lossy().into_owned();
        if e.kind() == ErrorKind::NotFound {
            format!("{what}: `{program}` not found: {needs}")
        } else {
            format!("{what}: cannot start `{program}`: {e}")
        }
    })?;
    let writer = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => Some(std::thread::spawn(move || {
            // A child that exits early closes the pipe; its exit status tells why.
            let _ = stdin.write_all(&input);
        })),
        _ => None,
    };
    let (out_buf, out_reader) = collect(child.stdout.take().map(|p| Box::new(p) as _));
    let (err_buf, err_reader) = collect(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(25)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish within {} s; killed.\n--- stderr ---\n{}\n--- stdout ---\n{}",
                    timeout.as_secs(),
                    text(&err_buf),
                    text(&out_buf)
                ));
            }
            Err(e) => return Err(format!("{what}: wait: {e}")),
        }
    };
    // The pipes close when the child (and anything it left running) is gone.
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let _ = out_reader.join();
    let _ = err_reader.join();
    Ok(Finished {
        ok: status.success(),
        status: status.to_string(),
        stdout: text(&out_buf),
        stderr: text(&err_buf),
    })
}
