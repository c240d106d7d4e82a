//! Per-worker state (design §4 "worker" tier): `!Send`, owned by one core.
//!
//! Holds the worker's current [`Generation`] (its view of a snapshot, with its own clones of
//! anything that has interior caches), the request-ID generator, and later the upstream
//! pools and counters. Requests clone the `Rc` of the generation they start with, so a reload
//! never changes a request mid-flight.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::endpoints::HealthEndpoints;
use crate::http::limits::SessionLimits;
use crate::observe::counters::WorkerCounters;
use crate::relay::HeldBytes;
use crate::request_id::IdGenerator;
use crate::route::Router;
use crate::snapshot::Snapshot;
use crate::upstream::connect::Resolver;
use crate::upstream::pool::Pool;
use crate::upstream::route::WorkerRoute;

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
    generation: RefCell<Rc<Generation>>,
}

impl WorkerState {
    pub fn new(id: usize, snapshot: Arc<Snapshot>) -> Self {
        WorkerState {
            id,
            ids: IdGenerator::new(),
            counters: Arc::default(),
            held: HeldBytes::default(),
            pool: Pool::default(),
            resolver: Resolver::default(),
            generation: RefCell::new(Rc::new(Generation::prepare(snapshot))),
        }
    }

    /// The generation new requests start on.
    pub fn generation(&self) -> Rc<Generation> {
        self.generation.borrow().clone()
    }

    pub fn session_limits(&self) -> SessionLimits {
        self.generation.borrow().limits
    }
}
