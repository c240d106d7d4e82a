//! Process logging with `tracing` to stdout (spec §11).
//!
//! Text lines, with ANSI colours only when stdout is a terminal. Startup lines use the
//! `dito::startup` target, which is printed at every level. The per-worker non-blocking queue
//! and JSON lines arrive with the observability issue.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::config::LogLevel;

/// Target of lines that are printed whatever the level (spec §11 "startup lines").
pub const STARTUP: &str = "dito::startup";

pub fn init(level: LogLevel) {
    let level = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    let filter = Targets::new()
        .with_default(level)
        .with_target(STARTUP, LevelFilter::INFO);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false)
        .with_writer(std::io::stdout);
    // A second init (tests in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}
