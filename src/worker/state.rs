//! Per-worker state (design §4 "worker" tier): `!Send`, owned by one core.
//!
//! Holds the worker's current [`Generation`] (its view of a snapshot, with its own clones of
//! anything that has interior caches), the request-ID generator, the upstream pools and TLS
//! client configs (both kept across generations, keyed by content), and the metrics recorder (the only writer of this worker's metrics, which the control thread
//! reads). Requests clone the `Rc` of the generation they start with, so a reload never
//! changes a request mid-flight.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rustls::ServerConfig;

use crate::endpoints::{HealthEndpoints, MetricsEndpoint};
use crate::http::limits::SessionLimits;
use crate::lifecycle::Lifecycle;
use crate::observe::metrics::WorkerMetrics;
use crate::observe::recorder::Recorder;
use crate::plugin::instance::{location_chains, PluginInstance};
use crate::relay::HeldBytes;
use crate::request_id::IdGenerator;
use crate::route::Router;
use crate::snapshot::Snapshot;
use crate::tls::server::ServerConfigs;
use crate::upstream::connect::Resolver;
use crate::upstream::http2::H2Conns;
use crate::upstream::pool::Pool;
use crate::upstream::route::WorkerRoute;
use crate::upstream::tls::ClientConfigs;
use crate::worker::commands::Report;
use crate::worker::signal::LocalSignal;

/// One worker's view of one configuration generation.
#[derive(Debug)]
pub struct Generation {
    pub snapshot: Arc<Snapshot>,
    pub limits: SessionLimits,
    pub health: HealthEndpoints,
    pub metrics: MetricsEndpoint,
    /// The TLS listener's server config (this worker's own), when `tls` is set.
    pub server_tls: Option<Arc<ServerConfig>>,
    /// This worker's clone of the router: its own regex caches (design §1 "the rule").
    pub router: Router,
    /// Same order as `router`.
    pub routes: Vec<WorkerRoute>,
    /// Each location's plugin chain (`middlewares`), this worker's instances; same order.
    pub chains: Vec<Vec<Rc<PluginInstance>>>,
}

impl Generation {
    /// This worker's view of `snapshot`; TLS client configs come from (and go into) `configs`,
    /// the listener's server config from `servers`. `Err` when rustls refuses to build one.
    pub fn prepare(
        snapshot: Arc<Snapshot>,
        configs: &ClientConfigs,
        servers: &ServerConfigs,
    ) -> Result<Generation, String> {
        let server_tls = match &snapshot.config.tls {
            Some(tls) => Some(servers.get_or_build(tls)?),
            None => None,
        };
        let routes = snapshot
            .targets
            .iter()
            .map(|t| WorkerRoute::prepare(t, configs))
            .collect::<Result<_, _>>()?;
        let chains = location_chains(&snapshot.config)?;
        Ok(Generation {
            chains,
            limits: snapshot.session_limits,
            health: snapshot.health.clone(),
            metrics: MetricsEndpoint::from_config(&snapshot.config.metrics),
            router: snapshot.router.clone(),
            routes,
            server_tls,
            snapshot,
        })
    }

    /// Whether a route of this generation uses the TLS settings with this content hash.
    fn uses_tls_settings(&self, settings: u64) -> bool {
        self.routes
            .iter()
            .any(|r| r.tls.is_some() && r.key.settings == settings)
    }
}

pub struct WorkerState {
    pub id: usize,
    pub ids: IdGenerator,
    /// This worker's metrics: written here only, read by the control thread (spec §10).
    pub metrics: Recorder,
    /// Reports to the control thread (a metrics scrape asks it for the text).
    pub reports: crossbeam_channel::Sender<Report>,
    /// Bytes of response bodies this worker holds (spec §6's 64 MiB budget).
    pub held: HeldBytes,
    /// Upstream connections, kept across generations.
    pub pool: Pool,
    /// Multiplexed HTTP/2 upstream connections (`force_http2`), one per pool key.
    pub h2_conns: Rc<H2Conns>,
    pub resolver: Resolver,
    /// TLS client configs by content hash (design §1: one per worker), kept across
    /// generations so a reload with unchanged files keeps their session caches.
    pub tls_configs: ClientConfigs,
    /// The TLS listener's server config, kept while its files are unchanged.
    pub server_configs: ServerConfigs,
    /// Process-wide flags the control thread writes (ready, draining).
    pub lifecycle: Arc<Lifecycle>,
    /// Fired when shutdown begins (SIGTERM, before `shutdown_delay`): from then on every
    /// response ends its connection (`Connection: close`, GOAWAY on HTTP/2), so keep-alive
    /// clients move to another replica while this one still serves (spec §12).
    pub closing: LocalSignal,
    /// Fired when this worker starts draining (after `shutdown_delay`): it stops accepting
    /// and idle connections close.
    pub drain: LocalSignal,
    generation: RefCell<Rc<Generation>>,
}

impl WorkerState {
    /// `Err` when the first generation cannot be prepared (a TLS client config).
    pub fn new(
        id: usize,
        snapshot: Arc<Snapshot>,
        lifecycle: Arc<Lifecycle>,
        metrics: Arc<WorkerMetrics>,
        reports: crossbeam_channel::Sender<Report>,
    ) -> Result<Self, String> {
        let tls_configs = ClientConfigs::default();
        let server_configs = ServerConfigs::default();
        let first = Generation::prepare(snapshot, &tls_configs, &server_configs)?;
        Ok(WorkerState {
            id,
            ids: IdGenerator::new(),
            metrics: Recorder::new(metrics),
            reports,
            held: HeldBytes::default(),
            pool: Pool::default(),
            resolver: Resolver::default(),
            lifecycle,
            closing: LocalSignal::default(),
            drain: LocalSignal::default(),
            tls_configs,
            h2_conns: Rc::default(),
            server_configs,
            generation: RefCell::new(Rc::new(first)),
        })
    }

    /// Makes `next` the generation new requests start on; running requests keep theirs.
    /// TLS configs only the old generations used are dropped from the cache.
    pub fn commit(&self, next: Generation) {
        self.tls_configs
            .retain(|settings| next.uses_tls_settings(settings));
        *self.generation.borrow_mut() = Rc::new(next);
    }

    /// Whether responses should end their connections (shutdown has begun).
    pub fn is_closing(&self) -> bool {
        self.closing.is_fired()
    }

    /// The generation new requests start on.
    pub fn generation(&self) -> Rc<Generation> {
        self.generation.borrow().clone()
    }

    pub fn session_limits(&self) -> SessionLimits {
        self.generation.borrow().limits
    }
}
