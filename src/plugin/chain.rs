//! The middleware chain of one location on one request (spec §8): request hooks in
//! `middlewares` order, then — for whatever response the client gets, the upstream's, Dito's
//! own error, or a plugin's answer — the response hooks in reverse order, of every plugin
//! whose request hook let the request go on. A plugin that answers stops the request chain;
//! the plugins before it still see its answer on the way out (its own response hook does
//! not run: it made the response). A hook that fails or panics gives the client 500; a panic
//! is logged and counted, and the worker goes on. Worker thread only.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use plugin_abi::{Code, Exchange};

use super::exchange::{ExchangeState, Fields, Phase};
use super::host_api::CURRENT;
use super::instance::PluginInstance;
use crate::http::request::{HeadError, RequestHead};

/// Runs `f` as plugin `name`'s code (its logs and counters carry the name).
pub fn calling<T>(name: &Rc<str>, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|c| c.replace(Some(name.clone())));
    let value = f();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    value
}

/// A hook that did not let the request go on normally.
#[derive(Debug, Clone)]
pub struct Failure {
    pub plugin: Rc<str>,
    pub panicked: bool,
}

/// How the request chain ended.
pub enum RequestOutcome {
    /// Every plugin let the request go on (perhaps changed).
    Continue,
    /// A plugin answered: status, fields and body of its response (before the response
    /// hooks of the plugins in front of it).
    Answered {
        status: u16,
        fields: Fields,
        body: Vec<u8>,
    },
    /// A hook failed or panicked.
    Failed(Failure),
}

/// What the forwarder needs of a chain: the response hooks, run on the response head before
/// it goes to the client.
pub trait ResponseHooks {
    fn response(&self, status: &mut u16, fields: &mut Fields) -> Result<(), Failure>;
}

impl ResponseHooks for PluginRun<'_> {
    fn response(&self, status: &mut u16, fields: &mut Fields) -> Result<(), Failure> {
        PluginRun::response(self, status, fields)
    }
}

/// The chain's run for one request.
pub struct PluginRun<'h> {
    chain: &'h [Rc<PluginInstance>],
    state: RefCell<ExchangeState<'h>>,
    /// The plugins (from the front) whose response hooks run.
    ran: Cell<usize>,
}

fn failed(p: &PluginInstance, code: Code) -> Failure {
    let panicked = code == Code::PANICKED;
    if panicked {
        tracing::error!(plugin = %p.name, "plugin panicked; the request gets 500");
    } else {
        tracing::warn!(plugin = %p.name, code = code.0, "plugin failed; the request gets 500");
    }
    Failure {
        plugin: p.name.clone(),
        panicked,
    }
}

impl<'h> PluginRun<'h> {
    pub fn new(chain: &'h [Rc<PluginInstance>], head: &'h RequestHead) -> Self {
        PluginRun {
            chain,
            state: RefCell::new(ExchangeState::new(head, chain.len())),
            ran: Cell::new(0),
        }
    }

    /// The handle the hooks get: the state, reached only through this pointer while a hook
    /// runs (no `RefCell` borrow is held across a call).
    fn handle(&self) -> *mut Exchange {
        self.state.as_ptr().cast()
    }

    /// Runs the request hooks in order.
    pub fn request(&self) -> RequestOutcome {
        for (i, p) in self.chain.iter().enumerate() {
            {
                let mut s = self.state.borrow_mut();
                s.phase = Phase::Request;
                s.current = i;
            }
            // SAFETY: the handle points to this run's state, which no borrow holds now.
            let code = calling(&p.name, || unsafe { p.on_request(self.handle()) });
            match code {
                Code::CONTINUE => self.ran.set(i + 1),
                Code::RESPOND => {
                    let mut s = self.state.borrow_mut();
                    let Some(body) = s.answer.take() else {
                        tracing::warn!(plugin = %p.name, "plugin returned RESPOND without an answer");
                        return RequestOutcome::Failed(failed(p, Code::ERROR));
                    };
                    let fields = std::mem::take(&mut s.resp_headers);
                    return RequestOutcome::Answered {
                        status: s.status,
                        fields,
                        body,
                    };
                }
                other => return RequestOutcome::Failed(failed(p, other)),
            }
        }
        RequestOutcome::Continue
    }

    /// The request as the hooks left it, when they changed it.
    pub fn edited_head(&self) -> Result<Option<RequestHead>, HeadError> {
        self.state.borrow().edited_head()
    }

    /// Runs the response hooks, last plugin first, on `status` and `fields`.
    pub fn response(&self, status: &mut u16, fields: &mut Fields) -> Result<(), Failure> {
        let ran = self.ran.get();
        if ran == 0 {
            return Ok(());
        }
        {
            let mut s = self.state.borrow_mut();
            s.phase = Phase::Response;
            s.status = *status;
            s.resp_headers = std::mem::take(fields);
        }
        let mut outcome = Ok(());
        for i in (0..ran).rev() {
            let p = &self.chain[i];
            if !p.hooks_response() {
                continue;
            }
            self.state.borrow_mut().current = i;
            // SAFETY: as in `request`.
            let code = calling(&p.name, || unsafe { p.on_response(self.handle()) });
            if code != Code::CONTINUE {
                outcome = Err(failed(p, code));
                break;
            }
        }
        let mut s = self.state.borrow_mut();
        *status = s.status;
        *fields = std::mem::take(&mut s.resp_headers);
        outcome
    }
}
