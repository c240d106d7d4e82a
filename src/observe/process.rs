//! The `process_*` metrics (spec §10), read from `/proc/self` at scrape time on the control
//! thread, the way the Prometheus client libraries do: CPU time, memory, file descriptors,
//! start time, threads. A value the kernel does not give is left out, never guessed.

use std::fs;

/// Clock ticks per second of `/proc/<pid>/stat` times. The kernel exports `USER_HZ`, which
/// is 100 on every Linux architecture Dito runs on (the Prometheus Go client assumes the same);
/// asking `sysconf` would need `unsafe`.
const USER_HZ: f64 = 100.0;

/// A snapshot of the process's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub threads: Option<u64>,
}

impl ProcessStats {
    /// Reads the current values of this process.
    pub fn read() -> ProcessStats {
        let stat = fs::read_to_string("/proc/self/stat").ok();
        let stat = stat.as_deref().and_then(parse_stat);
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let boot = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        ProcessStats {
            cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / USER_HZ),
            resident_bytes: status_kib(&status, "VmRSS:").map(|k| k * 1024),
            virtual_bytes: stat.map(|s| s.vsize),
            open_fds: fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
            max_fds: max_open_files(&limits),
            start_time_seconds: stat
                .zip(boot)
                .map(|(s, b)| b as f64 + s.starttime as f64 / USER_HZ),
            threads: stat.map(|s| s.threads),
        }
    }
}

/// The fields used from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    starttime: u64,
    vsize: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        starttime: field(22)?,
        vsize: field(23)?,
    })
}

/// A `Key:   N kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit of `Max open files` in `/proc/self/limits`; `None` when unlimited.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_name() {
        let text = "15742 (a) b (c)) R 15740 15740 7915 0 -1 4194304 102 0 0 0 250 30 0 0 20 0 \
                    7 0 842256 3133440 407 18446744073709551615 0 0";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                utime: 250,
                stime: 30,
                threads: 7,
                starttime: 842256,
                vsize: 3133440,
            })
        );
        assert_eq!(parse_stat("12 (x) R 1 2"), None);
    }

    #[test]
    fn parses_status_limits_and_btime() {
        let status = "Name:\tdito\nVmSize:\t    3892 kB\nVmRSS:\t    2016 kB\nThreads:\t1\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2016));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                40000                files\n";
        assert_eq!(max_open_files(limits), Some(20000));
        assert_eq!(
            max_open_files("Max open files            unlimited            unlimited  files"),
            None
        );
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1795863757\n"), Some(1795863757));
    }

    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.resident_bytes.is_some_and(|v| v > 0));
        assert!(p.virtual_bytes.is_some_and(|v| v > 0));
        assert!(p.open_fds.is_some_and(|v| v >= 3));
        assert!(p.threads.is_some_and(|v| v >= 1));
        assert!(p.cpu_seconds.is_some());
        assert!(p.start_time_seconds.is_some_and(|v| v > 1.0e9));
    }
}
