//! Signals reach the control thread as events (design §1: `signal-hook`, never monoio's
//! process-wide handler). SIGHUP reloads; SIGTERM and SIGINT shut down.

use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::Event;

/// Starts the thread that turns signals into events.
pub fn forward(events: crossbeam_channel::Sender<Event>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    thread::Builder::new()
        .name("dito-signals".to_owned())
        .spawn(move || {
            for sig in signals.forever() {
                let ev = if sig == SIGHUP {
                    Event::Reload
                } else {
                    Event::Terminate
                };
                if events.send(ev).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
