//! `ws-echo`: the WebSocket echo backend of the bench's `ws-echo` scenario.
//! Binds `--listen ADDR`, prints `ws-echo listening on IP:PORT`, and serves
//! with `--threads N` single-threaded tokio runtimes (see `server`).

use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;

use dito_ws_bench::server;

const USAGE: &str = "\
usage: ws-echo [--listen ADDR] [--threads N]

  --listen ADDR   address to bind (default 127.0.0.1:8090; port 0 = ephemeral)
  --threads N     accepting threads, each a single-threaded runtime (default 1)

A WebSocket upgrade (any path) gets a 101 and every data frame echoed; any
other request gets `200 ok` and a close.
";

fn main() -> ExitCode {
    let mut listen = "127.0.0.1:8090".to_string();
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let parsed = match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--listen" => value("--listen").map(|v| listen = v),
            "--threads" => value("--threads").and_then(|v| match v.parse() {
                Ok(n) if (1..=256).contains(&n) => {
                    threads = n;
                    Ok(())
                }
                _ => Err(format!("bad --threads {v:?} (1 to 256)")),
            }),
            _ => Err(format!("unknown argument {arg:?}")),
        };
        if let Err(msg) = parsed {
            eprint!("ws-echo: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ws-echo: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ws-echo listening on {addr}");
            let _ = out.flush();
        }
        Err(e) => {
            eprintln!("ws-echo: local address: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = server::run(listener, threads) {
        eprintln!("ws-echo: {e}");
    }
    ExitCode::FAILURE
}
