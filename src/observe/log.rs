//! Process logging with `tracing` to stdout (spec §11).
//!
//! Text lines, with ANSI colours only when stdout is a terminal. Startup lines use the
//! `dito::startup` target, which is printed at every level. The level can change on reload
//! through the [`LogHandle`]. The per-worker non-blocking queue and JSON lines arrive with the
//! observability issue.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, Registry};

use crate::config::LogLevel;

/// Target of lines that are printed whatever the level (spec §11 "startup lines").
pub const STARTUP: &str = "dito::startup";

/// Changes the log level of the running process.
pub struct LogHandle {
    handle: Option<reload::Handle<Targets, Registry>>,
}

impl LogHandle {
    pub fn set_level(&self, level: LogLevel) {
        if let Some(h) = &self.handle {
            let _ = h.modify(|f| *f = targets(level));
        }
    }
}

fn targets(level: LogLevel) -> Targets {
    let level = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    Targets::new()
        .with_default(level)
        .with_target(STARTUP, LevelFilter::INFO)
}

pub fn init(level: LogLevel) -> LogHandle {
    let (filter, handle) = reload::Layer::new(targets(level));
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false)
        .with_writer(std::io::stdout);
    // A second init (tests in one process) keeps the first subscriber.
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .is_ok();
    LogHandle {
        handle: installed.then_some(handle),
    }
}
