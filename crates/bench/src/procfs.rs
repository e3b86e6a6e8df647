//! CPU time and memory of a process or thread, read from `/proc` (Linux).

use anyhow::{Context, Result, anyhow, bail};

/// CPU seconds (user + system) of a process, or of the calling thread with `"thread-self"`.
pub fn cpu_seconds(proc_path: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{proc_path}/stat"))
        .with_context(|| format!("reading /proc/{proc_path}/stat"))?;
    stat_cpu_seconds(&stat).ok_or_else(|| anyhow!("unreadable /proc/{proc_path}/stat"))
}

/// CPU seconds (user + system) of the calling thread, from the kernel's clock of that thread
/// (`CLOCK_THREAD_CPUTIME_ID`): nanoseconds, where `/proc/thread-self/stat` counts in ticks of
/// 10 ms (a run of 0.1 s read from there is off by up to a tenth).
pub fn thread_cpu_seconds() -> Result<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        bail!(
            "clock_gettime(CLOCK_THREAD_CPUTIME_ID): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// User + system CPU seconds of a `/proc/.../stat` line.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s on Linux.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// What a process has used so far: user and system CPU seconds, and minor page faults (a
/// page touched for the first time since the allocator got it, or gave it back).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub user_s: f64,
    pub system_s: f64,
    pub minor_faults: u64,
}

/// [`Usage`] of process `pid`.
pub fn usage(pid: u32) -> Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    usage_of(&stat).ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))
}

/// [`Usage`] of a `/proc/.../stat` line.
fn usage_of(stat: &str) -> Option<Usage> {
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    // minflt is field 10, utime and stime 14 and 15 (clock ticks of 1/100 s).
    Some(Usage {
        user_s: num(11)? as f64 / 100.0,
        system_s: num(12)? as f64 / 100.0,
        minor_faults: num(7)?,
    })
}

/// CPU seconds (user + system) of every live process whose command name is `comm` and whose
/// command line (a PostgreSQL backend shows its user, database and client there) has a
/// word equal to `word`. A process that exits between two reads takes its time with it, so a
/// difference of two reads undercounts what exited meanwhile.
pub fn cpu_seconds_of_command(comm: &str, word: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let wanted = format!("({comm})");
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .split(|ch: char| ch.is_whitespace() || ch == '\0')
                    .any(|w| w == word)
            })
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| stat.split_whitespace().nth(1) == Some(wanted.as_str()))
        .filter_map(|stat| stat_cpu_seconds(&stat))
        .sum()
}

/// A field of /proc/PID/status in kB (VmHWM: peak resident set; VmRSS: current).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

/// The resident memory of a process at one moment, in kB (`/proc/PID/status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    /// `VmRSS`: all resident pages.
    pub rss: u64,
    /// `RssAnon`: the heap (allocator arenas, stacks).
    pub anon: u64,
    /// `RssFile`: mapped files (the binary, and SQLite's file when memory-mapped).
    pub file: u64,
    /// `VmHWM`: the peak of `VmRSS` since the process started.
    pub peak: u64,
}

/// The resident memory of process `pid` now.
pub fn resident(pid: u32) -> Result<Resident> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    resident_of(&s).ok_or_else(|| anyhow!("incomplete /proc/{pid}/status"))
}

/// [`Resident`] of the text of a `/proc/PID/status`.
fn resident_of(status: &str) -> Option<Resident> {
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some(Resident {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
        peak: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_utime_plus_stime_even_when_the_command_has_spaces() {
        let stat = "4242 (iterable (x) 1) S 1 4242 4242 0 -1 4194560 300 0 0 0 \
                    250 125 0 0 20 0 3 0 100 1000 10 18446744073709551615";
        assert_eq!(stat_cpu_seconds(stat), Some(3.75));
        assert_eq!(stat_cpu_seconds("4242 (short) S 1"), None);
        assert_eq!(stat_cpu_seconds("no parenthesis"), None);
        assert_eq!(
            usage_of(stat),
            Some(Usage {
                user_s: 2.5,
                system_s: 1.25,
                minor_faults: 300
            })
        );
        assert_eq!(usage_of("4242 (short) S 1"), None);
    }

    #[test]
    fn the_thread_clock_counts_this_threads_work() {
        let start = std::time::Instant::now();
        let before = thread_cpu_seconds().expect("thread CPU clock");
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let spent = thread_cpu_seconds().expect("thread CPU clock") - before;
        // Some of the busy loop ran on this thread, and no more than the loop lasted (the
        // process's other threads' time is not counted).
        let wall = start.elapsed().as_secs_f64();
        assert!(spent > 0.0 && spent <= wall + 1e-3, "{spent} s of {wall} s");
    }

    #[test]
    fn this_process_has_a_peak_resident_set() {
        assert!(status_kib(std::process::id(), "VmHWM:").is_ok_and(|k| k > 0));
        assert!(status_kib(std::process::id(), "NoSuchField:").is_err());
    }

    #[test]
    fn resident_memory_is_read_by_field_name() {
        let status = "Name:\tx\nVmHWM:\t  5000 kB\nVmRSS:\t  4000 kB\nRssAnon:\t 3000 kB\n\
                      RssFile:\t 900 kB\nRssShmem:\t 100 kB\n";
        assert_eq!(
            resident_of(status),
            Some(Resident {
                rss: 4000,
                anon: 3000,
                file: 900,
                peak: 5000
            })
        );
        assert_eq!(resident_of("VmRSS:\t 4000 kB\n"), None);
        let me = resident(std::process::id()).expect("own status");
        assert!(me.rss > 0 && me.peak >= me.rss, "{me:?}");
    }
}
