//! Black-box test harness: starts the real `dito` binary (and the `dito-echo` upstream) on
//! 127.0.0.1 with a real config, and speaks raw bytes to it.
//!
//! Processes are ended by PID when their handle drops. Readiness is the `Dito is ready on`
//! line, never a sleep. The io driver under test comes from `DITO_TEST_IO_DRIVER` (`uring`
//! by default; `make test` runs the suite under both).

// Test processes are not the data path: a lock around collected output lines is fine here.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types
)]

pub mod client;
pub mod h2_upstream;
pub mod h2client;
pub mod https_upstream;
pub mod plugins;
pub mod prom;
pub mod seccomp;
pub mod tls;
pub mod upstream;
pub mod ws_upstream;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a process may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub fn dito_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dito"))
}

/// `dito-echo` is another package of the workspace: it sits beside `dito` in the target dir.
pub fn echo_bin() -> PathBuf {
    let p = dito_bin().with_file_name("dito-echo");
    assert!(
        p.exists(),
        "{} is missing: build it first (`cargo build --workspace`, done by `make test`)",
        p.display()
    );
    p
}

/// The io driver this run tests (`uring` or `epoll`).
pub fn io_driver() -> String {
    std::env::var("DITO_TEST_IO_DRIVER").unwrap_or_else(|_| "uring".to_owned())
}

/// A minimal config on an ephemeral loopback port with the driver under test, plus `extra`.
pub fn config(extra: &str) -> String {
    format!(
        "port: 0\nlisten: 127.0.0.1\nworkers: 2\nio_driver: {}\n{extra}",
        io_driver()
    )
}

/// A fresh directory for one test's files.
pub fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dito-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Collected output lines of a child process, with a channel that sees each line.
struct Lines {
    all: Arc<Mutex<Vec<String>>>,
    rx: mpsc::Receiver<String>,
}

fn collect_lines(child: &mut Child) -> Lines {
    let all = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let all = all.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    Lines { all, rx }
}

/// A running `dito`.
pub struct Dito {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    lines: Lines,
}

/// A `dito` that exited (or never got ready).
#[derive(Debug)]
pub struct StartFailure {
    pub code: Option<i32>,
    pub output: String,
}

impl Dito {
    pub fn start(yaml: &str) -> Dito {
        Dito::try_start(yaml).unwrap_or_else(|f| panic!("dito did not start: {f:?}"))
    }

    pub fn try_start(yaml: &str) -> Result<Dito, StartFailure> {
        Dito::try_start_with(yaml, |_| {})
    }

    /// Starts with a hook that may adjust the command (environment, seccomp, ...).
    pub fn try_start_with(
        yaml: &str,
        adjust: impl FnOnce(&mut Command),
    ) -> Result<Dito, StartFailure> {
        let dir = temp_dir();
        let cfg = write_file(&dir, "config.yaml", yaml);
        Dito::try_start_file(dir, &cfg, adjust)
    }

    /// Starts on a config file the test laid out itself (e.g. behind symlinks) in `dir`, which
    /// the handle owns and removes when dropped.
    pub fn start_file(dir: PathBuf, cfg: &Path) -> Dito {
        Dito::try_start_file(dir, cfg, |_| {})
            .unwrap_or_else(|f| panic!("dito did not start: {f:?}"))
    }

    /// Starts with `-f cfg`; `dir` is the handle's directory (removed when dropped).
    pub fn try_start_file(
        dir: PathBuf,
        cfg: &Path,
        adjust: impl FnOnce(&mut Command),
    ) -> Result<Dito, StartFailure> {
        let mut cmd = Command::new(dito_bin());
        cmd.arg("-f")
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        adjust(&mut cmd);
        let mut child = cmd.spawn().expect("spawn dito");
        let lines = collect_lines(&mut child);
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => {
                    if let Some(addr) = line.split("Dito is ready on ").nth(1) {
                        // The address ends where the line does (text) or at the quote (JSON).
                        let addr: String = addr
                            .chars()
                            .take_while(|c| c.is_ascii_hexdigit() || ".:[]".contains(*c))
                            .collect();
                        let addr = addr.parse().expect("ready line address");
                        return Ok(Dito {
                            child,
                            addr,
                            dir,
                            lines,
                        });
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // Let the reader threads drain what is left.
                        std::thread::sleep(Duration::from_millis(50));
                        let output = lines.all.lock().unwrap().join("\n");
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(StartFailure {
                            code: status.code(),
                            output,
                        });
                    }
                    if left.is_zero() {
                        let _ = child.kill();
                        let _ = child.wait();
                        let output = lines.all.lock().unwrap().join("\n");
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(StartFailure { code: None, output });
                    }
                }
            }
        }
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.lines.all.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends signal `sig` (e.g. `libc::SIGHUP`) to the process.
    pub fn signal(&self, sig: i32) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is our
        // own child, which is not reaped before this handle drops, so it cannot be reused.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits up to `timeout` for the process to exit; its exit code (128 + N when signal N
    /// ended it), or `None` while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(
                    status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                );
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` until some output line contains `needle`.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .lines
                .all
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many output lines so far contain `needle`.
    pub fn count_output(&self, needle: &str) -> usize {
        self.lines
            .all
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Dito {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `dito-echo` upstream.
pub struct Echo {
    child: Child,
    pub addr: SocketAddr,
}

impl Echo {
    pub fn start() -> Echo {
        let mut child = Command::new(echo_bin())
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dito-echo");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("dito-echo listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected dito-echo line {line:?}"));
        Echo { child, addr }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `dito ARGS` to completion (for `check`, `--version`, usage errors).
pub fn run_dito(args: &[&str]) -> Output {
    Command::new(dito_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run dito")
}
