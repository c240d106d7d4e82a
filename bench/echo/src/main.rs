//! `dito-echo`: the demo and test upstream HTTP/1.1 server for Dito. It
//! binds `--listen ADDR` (default `127.0.0.1:8080`), prints exactly one
//! line `dito-echo listening on IP:PORT` to stdout, and serves forever with
//! one OS thread per connection, keep-alive and pipelining. Every final
//! response carries `X-Echo-Conn` (per-process connection serial, from 1)
//! and `X-Echo-Seq` (1-based request index on the connection). See
//! `USAGE` for the endpoints.

mod conn;
mod fnv;
#[cfg(test)]
mod mock;
mod request;
mod response;
mod routes;
mod server;
mod stream;

use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use conn::Transport;

const USAGE: &str = "\
usage: dito-echo [--listen ADDR] [--timeout SECS]

  --listen ADDR    address to bind (default 127.0.0.1:8080; port 0 = ephemeral)
  --timeout SECS   socket read/write timeout, also the idle keep-alive
                   timeout (default 300; 0 = none)
  -h, --help       this text

Prints `dito-echo listening on IP:PORT` once bound. Endpoints:
  /echo, /echo/...            request description (method, target, version,
                              headers, body length + FNV-1a 64, trailers)
  /echo-body                  the request body back
  /bytes/N  /chunked/N?chunk=K  /close/N    N pattern bytes (a..z repeating)
  /status/CODE  /redirect  /early-hints  /trailers  /no-reuse
  /sse?events=N&interval_ms=M   /slow-head?ms=M   /slow-body?ms=M&chunks=N
  /abort?bytes=N&mode=cl|chunked|cl-close|chunked-close
  /two-cl  /te-gzip           deliberately invalid responses
  /expect-reject              401 without reading the body, then close
  /headers-out?Name=value&... adds the pairs as response headers
";

/// Command-line options.
struct Options {
    listen: String,
    timeout: Option<Duration>,
}

/// Parses arguments; `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut opts = Options {
        listen: "127.0.0.1:8080".to_string(),
        timeout: Some(Duration::from_secs(300)),
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => opts.listen = value("--listen")?,
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v.parse().map_err(|_| format!("bad --timeout {v:?}"))?;
                opts.timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            let _ = io::stdout().write_all(USAGE.as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            let _ = write!(io::stderr(), "dito-echo: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&opts.listen) {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(
                io::stderr(),
                "dito-echo: cannot listen on {}: {e}",
                opts.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(io::stderr(), "dito-echo: local address: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "dito-echo listening on {addr}");
        let _ = out.flush();
    }
    accept_loop(&listener, opts.timeout);
    ExitCode::FAILURE
}

/// Accepts forever, one thread per connection.
fn accept_loop(listener: &TcpListener, timeout: Option<Duration>) {
    let mut next_id: u64 = 0;
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                let _ = writeln!(io::stderr(), "dito-echo: accept: {e}");
                // Out of descriptors or memory: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || server::serve(stream, id));
        if let Err(e) = spawned {
            let _ = writeln!(io::stderr(), "dito-echo: cannot spawn a thread: {e}");
        }
    }
}

impl Transport for TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)
    }

    fn prepare_reset(&mut self) {
        use std::os::fd::AsRawFd;
        let fd = self.as_raw_fd();
        // Closing with SO_LINGER 0 discards unsent data, so first wait
        // (briefly) until the peer has acknowledged everything written.
        let deadline = Instant::now() + Duration::from_secs(2);
        while unacked_bytes(fd) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: `fd` is the open socket owned by `self`; the option value
        // points to a live `linger` whose exact size is passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                std::ptr::from_ref(&linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}

/// Bytes in the socket's send queue not yet acknowledged (Linux
/// `SIOCOUTQ`); 0 where unknown.
#[cfg(target_os = "linux")]
fn unacked_bytes(fd: std::os::fd::RawFd) -> i64 {
    let mut n: libc::c_int = 0;
    // SAFETY: `fd` is an open socket and TIOCOUTQ (= SIOCOUTQ) writes one
    // `c_int` to the pointer, which refers to a live local.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if rc == 0 {
        i64::from(n)
    } else {
        0
    }
}

#[cfg(not(target_os = "linux"))]
fn unacked_bytes(_fd: std::os::fd::RawFd) -> i64 {
    0
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    fn parse(args: &[&str]) -> Result<Option<(String, Option<u64>)>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
            .map(|o| o.map(|o| (o.listen, o.timeout.map(|t| t.as_secs()))))
    }

    #[test]
    fn cli() {
        assert_eq!(parse(&[]), Ok(Some(("127.0.0.1:8080".into(), Some(300)))));
        assert_eq!(
            parse(&["--listen", "127.0.0.1:0"]),
            Ok(Some(("127.0.0.1:0".into(), Some(300))))
        );
        assert_eq!(
            parse(&["--listen=[::1]:9", "--timeout", "0"]),
            Ok(Some(("[::1]:9".into(), None)))
        );
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--timeout", "x"]).is_err());
    }
}
