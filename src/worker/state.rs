//! Per-worker state (design §4 "worker" tier): `!Send`, owned by one core.
//!
//! Holds the worker's current [`Generation`] (its view of a snapshot, with its own clones of
//! anything that has interior caches), the request-ID generator, and later the upstream
//! pools and counters. Requests clone the `Rc` of the generation they start with, so a reload
//! never changes a request mid-flight.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::endpoints::HealthEndpoints;
use crate::http::limits::SessionLimits;
use crate::lifecycle::Lifecycle;
use crate::observe::counters::WorkerCounters;
use crate::relay::HeldBytes;
use crate::request_id::IdGenerator;
use crate::route::Router;
use crate::snapshot::Snapshot;
use crate::upstream::connect::Resolver;
use crate::upstream::pool::Pool;
use crate::upstream::route::WorkerRoute;
use crate::worker::signal::LocalSignal;

/// One worker's view of one configuration generation.
#[derive(Debug)]
pub struct Generation {
    pub snapshot: Arc<Snapshot>,
    pub limits: SessionLimits,
    pub health: HealthEndpoints,
    /// This worker's clone of the router: its own regex caches (design §1 "the rule").
    pub router: Router,
    /// Same order as `router`.
    pub routes: Vec<WorkerRoute>,
}

impl Generation {
    pub fn prepare(snapshot: Arc<Snapshot>) -> Generation {
        Generation {
            limits: snapshot.session_limits,
            health: snapshot.health.clone(),
            router: snapshot.router.clone(),
            routes: snapshot.targets.iter().map(WorkerRoute::prepare).collect(),
            snapshot,
        }
    }
}

pub struct WorkerState {
    pub id: usize,
    pub ids: IdGenerator,
    /// Written by this worker only; read by the control thread.
    pub counters: Arc<WorkerCounters>,
    /// Bytes of response bodies this worker holds (spec §6's 64 MiB budget).
    pub held: HeldBytes,
    /// Upstream connections, kept across generations.
    pub pool: Pool,
    pub resolver: Resolver,
    /// Process-wide flags the control thread writes (ready, draining).
    pub lifecycle: Arc<Lifecycle>,
    /// Fired when this worker starts draining: idle connections close.
    pub drain: LocalSignal,
    /// Open client connections on this worker.
    pub connections: Cell<usize>,
    generation: RefCell<Rc<Generation>>,
}

impl WorkerState {
    pub fn new(id: usize, snapshot: Arc<Snapshot>, lifecycle: Arc<Lifecycle>) -> Self {
        WorkerState {
            id,
            ids: IdGenerator::new(),
            counters: Arc::default(),
            held: HeldBytes::default(),
            pool: Pool::default(),
            resolver: Resolver::default(),
            lifecycle,
            drain: LocalSignal::default(),
            connections: Cell::new(0),
            generation: RefCell::new(Rc::new(Generation::prepare(snapshot))),
        }
    }

    /// Makes `next` the generation new requests start on; running requests keep theirs.
    pub fn commit(&self, next: Generation) {
        *self.generation.borrow_mut() = Rc::new(next);
    }

    /// Whether responses should end their connections (shutdown has begun).
    pub fn is_draining(&self) -> bool {
        self.drain.is_fired()
    }

    /// The generation new requests start on.
    pub fn generation(&self) -> Rc<Generation> {
        self.generation.borrow().clone()
    }

    pub fn session_limits(&self) -> SessionLimits {
        self.generation.borrow().limits
    }
}
