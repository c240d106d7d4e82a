//! The command line (spec §1): `dito -f FILE`, `dito check -f FILE`, `--version`, `--help`.
//!
//! Go-style flags (`-f X`, `-f=X`, `--f X`, `-config`, `-enable-profiler[=BOOL]`) are rewritten
//! to their clap spelling before clap sees argv. Exit codes: 0 success, 1 config or startup
//! error, 2 usage.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config;

#[derive(Debug, Parser)]
#[command(
    name = "dito",
    version,
    about = "A thread-per-core io_uring reverse proxy"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short = 'f',
        long = "config",
        value_name = "FILE",
        default_value = "config.yaml",
        global = true
    )]
    pub config: PathBuf,
    /// Serve CPU profiles on `profiler.listen`.
    #[arg(long = "enable-profiler", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub enable_profiler: Option<bool>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and validate the config; exit 0 (warnings allowed) or 1.
    Check,
}

/// Rewrites Go-style single-dash long flags into clap's spelling.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                return a;
            }
            let Some(s) = a.to_str() else { return a };
            let (flag, value) = match s.split_once('=') {
                Some((f, v)) => (f, Some(v)),
                None => (s, None),
            };
            let canonical = match flag {
                "-f" | "--f" | "-config" | "--config" => "--config",
                "-enable-profiler" | "--enable-profiler" => "--enable-profiler",
                _ => return a,
            };
            match value {
                Some(v) => OsString::from(format!("{canonical}={v}")),
                None => OsString::from(canonical),
            }
        })
        .collect()
}

/// Parses argv and runs the command; returns the exit code.
pub fn main() -> i32 {
    let args = normalize_args(std::env::args_os());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Some(Command::Check) => check(&cli.config),
        None => crate::control::run(&cli.config, cli.enable_profiler == Some(true)),
    }
}

fn check(path: &std::path::Path) -> i32 {
    match config::load_file(path) {
        Ok(loaded) => {
            let file = path.display().to_string();
            for w in &loaded.warnings {
                eprintln!("WARN {}", w.render(&file));
            }
            println!("{}: configuration OK", path.display());
            0
        }
        Err(e) => {
            for w in &e.warnings {
                eprintln!("WARN {}", w.render(&e.file));
            }
            eprintln!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[&str]) -> Vec<String> {
        normalize_args(v.iter().map(OsString::from))
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn go_style_flags_are_rewritten() {
        assert_eq!(
            norm(&["dito", "-f", "x.yaml"]),
            ["dito", "--config", "x.yaml"]
        );
        assert_eq!(norm(&["dito", "-f=x.yaml"]), ["dito", "--config=x.yaml"]);
        assert_eq!(norm(&["dito", "--f", "x"]), ["dito", "--config", "x"]);
        assert_eq!(
            norm(&["dito", "-enable-profiler=false"]),
            ["dito", "--enable-profiler=false"]
        );
        assert_eq!(
            norm(&["dito", "check", "-f", "c"]),
            ["dito", "check", "--config", "c"]
        );
    }

    #[test]
    fn clap_accepts_normalised_forms() {
        let c = Cli::try_parse_from(normalize_args(
            ["dito", "-f=a.yaml", "-enable-profiler"].map(OsString::from),
        ));
        assert!(matches!(
            c,
            Ok(Cli {
                enable_profiler: Some(true),
                ..
            })
        ));
        let c = Cli::try_parse_from(normalize_args(
            ["dito", "check", "-f", "b"].map(OsString::from),
        ));
        assert!(matches!(
            c,
            Ok(Cli {
                command: Some(Command::Check),
                ..
            })
        ));
    }
}
