//! `ws-load`: the bench's WebSocket load client.
//!
//! `ws-load echo URL`: `--connections` connections (spread over `--threads`
//! threads, each a single-threaded tokio runtime) each keep exactly one
//! `--size`-byte binary message in flight for `--duration` seconds (send, wait
//! for the echo, compare, repeat); prints one `WSJSON {...}` line with the
//! messages completed, the seconds, latency percentiles and failures.
//!
//! `ws-load idle URL`: opens `--connections` tunnels (`--batch` at a time),
//! checks each with one echo, prints `WSIDLE {...}` and then holds them all,
//! silent, until a line (or EOF) on stdin; the harness measures the proxy's
//! memory in between.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use dito_ws_bench::client::{Conn, Failure, Target};

const USAGE: &str = "\
usage: ws-load echo URL [--connections N] [--duration SECS] [--size BYTES] [--threads N]
       ws-load idle URL [--connections N] [--size BYTES] [--batch N]

  URL              ws://HOST:PORT/PATH
  --connections N  connections (default 64)
  --duration SECS  echo: seconds of load after every connection is open (default 8)
  --size BYTES     message payload (default 32)
  --threads N      echo: threads, connections shared out (default 1)
  --batch N        idle: connections opened concurrently (default 100)
";

/// How long after `--duration` a missing echo counts as a timeout.
const GRACE: Duration = Duration::from_secs(10);

struct Opts {
    mode: String,
    target: Target,
    connections: usize,
    duration: Duration,
    size: usize,
    threads: usize,
    batch: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or("no mode (echo or idle)")?;
    if mode == "-h" || mode == "--help" {
        return Err(String::new());
    }
    if mode != "echo" && mode != "idle" {
        return Err(format!("unknown mode {mode:?} (echo or idle)"));
    }
    let target = Target::parse(&args.next().ok_or("no URL")?)?;
    let mut o = Opts {
        mode,
        target,
        connections: 64,
        duration: Duration::from_secs(8),
        size: 32,
        threads: 1,
        batch: 100,
    };
    while let Some(flag) = args.next() {
        let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n: u64 = v.parse().map_err(|_| format!("bad {flag} {v:?}"))?;
        let bad = || format!("{flag} {n} out of range");
        match flag.as_str() {
            "--connections" if (1..=100_000).contains(&n) => o.connections = n as usize,
            "--duration" if (1..=3600).contains(&n) => o.duration = Duration::from_secs(n),
            "--size" if n <= 1 << 20 => o.size = n as usize,
            "--threads" if (1..=64).contains(&n) => o.threads = n as usize,
            "--batch" if (1..=10_000).contains(&n) => o.batch = n as usize,
            "--connections" | "--duration" | "--size" | "--threads" | "--batch" => {
                return Err(bad())
            }
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(msg) if msg.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprint!("ws-load: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if opts.mode == "echo" {
        echo(&opts)
    } else {
        idle(&opts)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

/// Failures counted by kind, as JSON members; the first one's text kept.
#[derive(Default)]
struct Failures {
    counts: Vec<(&'static str, u64)>,
    first: Option<String>,
}

impl Failures {
    fn add(&mut self, f: &Failure) {
        match self.counts.iter_mut().find(|(k, _)| *k == f.kind()) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((f.kind(), 1)),
        }
        self.first.get_or_insert_with(|| f.to_string());
    }

    fn merge(&mut self, other: Failures) {
        for (k, n) in other.counts {
            match self.counts.iter_mut().find(|(kk, _)| *kk == k) {
                Some((_, m)) => *m += n,
                None => self.counts.push((k, n)),
            }
        }
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    fn json(&self) -> String {
        let kinds: Vec<String> = self
            .counts
            .iter()
            .map(|(k, n)| format!("\"{k}\":{n}"))
            .collect();
        let first = self
            .first
            .as_deref()
            .unwrap_or("")
            .replace(['"', '\\'], "'");
        format!(
            "\"errors\":{},\"error_kinds\":{{{}}},\"first_error\":\"{first}\"",
            self.total(),
            kinds.join(",")
        )
    }
}

/// Opens `n` connections, `batch` at a time; the ones that failed are counted.
async fn open_all(
    t: &Target,
    n: usize,
    batch: usize,
    seed: u64,
    fails: &mut Failures,
) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let k = batch.min(n - i);
        let tasks: Vec<_> = (0..k)
            .map(|j| {
                let t = t.clone();
                tokio::spawn(async move { Conn::open(&t, seed + (i + j) as u64).await })
            })
            .collect();
        for task in tasks {
            match task.await {
                Ok(Ok(c)) => conns.push(c),
                Ok(Err(f)) => fails.add(&f),
                Err(e) => fails.add(&Failure::Handshake(format!("task: {e}"))),
            }
        }
        i += k;
    }
    conns
}

struct ThreadResult {
    messages: u64,
    connected: usize,
    latencies_us: Vec<u32>,
    elapsed: Duration,
    fails: Failures,
}

fn echo_thread(
    o: &Opts,
    conns: usize,
    index: usize,
    barrier: &Barrier,
) -> Result<ThreadResult, String> {
    let rt = runtime()?;
    let mut fails = Failures::default();
    let opened = rt.block_on(open_all(
        &o.target,
        conns,
        o.batch,
        (index as u64) << 32,
        &mut fails,
    ));
    let connected = opened.len();
    barrier.wait(); // every thread's connections open before the clock starts
    let start = Instant::now();
    let deadline = start + o.duration;
    let payload: Arc<[u8]> = (0..o.size).map(|i| b'a' + (i % 26) as u8).collect();
    let results = rt.block_on(async {
        let tasks: Vec<_> = opened
            .into_iter()
            .map(|c| tokio::spawn(echo_loop(c, payload.clone(), deadline)))
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    let elapsed = start.elapsed();
    let mut r = ThreadResult {
        messages: 0,
        connected,
        latencies_us: Vec::new(),
        elapsed,
        fails,
    };
    for res in results {
        match res {
            Ok((lat, fail)) => {
                r.messages += lat.len() as u64;
                r.latencies_us.extend_from_slice(&lat);
                if let Some(f) = fail {
                    r.fails.add(&f);
                }
            }
            Err(e) => r
                .fails
                .add(&Failure::Io(std::io::Error::other(e.to_string()))),
        }
    }
    Ok(r)
}

/// One connection's loop: round trips until `deadline`; latencies in µs.
async fn echo_loop(
    mut c: Conn,
    payload: Arc<[u8]>,
    deadline: Instant,
) -> (Vec<u32>, Option<Failure>) {
    let mut lat = Vec::with_capacity(1 << 14);
    let run = async {
        while Instant::now() < deadline {
            let t0 = Instant::now();
            c.round_trip(&payload).await?;
            lat.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
        Ok::<(), Failure>(())
    };
    let fail = match tokio::time::timeout_at((deadline + GRACE).into(), run).await {
        Ok(Ok(())) => None,
        Ok(Err(f)) => Some(f),
        Err(_) => Some(Failure::Timeout),
    };
    (lat, fail)
}

fn percentile(sorted: &[u32], q: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let k = (sorted.len() * q).div_ceil(100).clamp(1, sorted.len()) - 1;
    sorted[k]
}

fn echo(o: &Opts) -> Result<(), String> {
    let threads = o.threads.min(o.connections);
    let barrier = Arc::new(Barrier::new(threads));
    let results: Vec<Result<ThreadResult, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let n = o.connections / threads + usize::from(i < o.connections % threads);
                let b = barrier.clone();
                s.spawn(move || echo_thread(o, n, i, &b))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a load thread panicked".into()))
            })
            .collect()
    });
    let (mut messages, mut connected, mut secs) = (0u64, 0usize, 0f64);
    let mut lat = Vec::new();
    let mut fails = Failures::default();
    for r in results {
        let r = r?;
        messages += r.messages;
        connected += r.connected;
        secs = secs.max(r.elapsed.as_secs_f64());
        lat.extend_from_slice(&r.latencies_us);
        fails.merge(r.fails);
    }
    lat.sort_unstable();
    println!(
        "WSJSON {{\"messages\":{messages},\"seconds\":{secs:.6},\"connections\":{},\"connected\":{connected},\
         \"size\":{},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},{}}}",
        o.connections,
        o.size,
        percentile(&lat, 50),
        percentile(&lat, 99),
        lat.last().copied().unwrap_or(0),
        fails.json()
    );
    Ok(())
}

fn idle(o: &Opts) -> Result<(), String> {
    let rt = runtime()?;
    let mut fails = Failures::default();
    let start = Instant::now();
    let payload: Vec<u8> = (0..o.size).map(|i| b'a' + (i % 26) as u8).collect();
    let conns = rt.block_on(async {
        let opened = open_all(&o.target, o.connections, o.batch, 0, &mut fails).await;
        let mut checked = Vec::with_capacity(opened.len());
        for mut c in opened {
            match c.round_trip(&payload).await {
                Ok(()) => checked.push(c),
                Err(f) => fails.add(&f),
            }
        }
        checked
    });
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "WSIDLE {{\"open\":{},\"connections\":{},\"seconds\":{:.3},{}}}",
            conns.len(),
            o.connections,
            start.elapsed().as_secs_f64(),
            fails.json()
        );
        let _ = out.flush();
    }
    // Hold every tunnel open and silent until told (a line or EOF on stdin).
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    drop(conns);
    drop(rt);
    Ok(())
}
