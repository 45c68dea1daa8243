//! Prometheus metrics of the gateway (OPS-3), exposed on the operators' listener.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

/// What kind of target a request was routed to; `unrouted` for requests the gateway
/// answered itself with an error before choosing one.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RouteClass {
    Webapp,
    Api,
    Core,
    /// The static content host (GW-5).
    Static,
    Unrouted,
}

impl RouteClass {
    /// Every class, in declaration order: `index()` is a position in this list.
    const ALL: [RouteClass; 5] = [
        RouteClass::Webapp,
        RouteClass::Api,
        RouteClass::Core,
        RouteClass::Static,
        RouteClass::Unrouted,
    ];

    fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Webapp => "webapp",
            RouteClass::Api => "api",
            RouteClass::Core => "core",
            RouteClass::Static => "static",
            RouteClass::Unrouted => "unrouted",
        }
    }
}

impl EncodeLabelValue for RouteClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    class: RouteClass,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: RouteClass,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ReloadResult {
    Ok,
    Error,
}

impl EncodeLabelValue for ReloadResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text = match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Error => "error",
        };
        EncodeLabelValue::encode(&text, encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: ReloadResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

/// How a WebSocket's relay reaches its two connections: `direct`, reading and writing
/// the sockets (plain or TLS) itself, or `layered`, through the HTTP library's upgrade
/// layers, which costs every message more work. Every connection the gateway accepts or
/// opens itself is relayed directly; a `layered` count means a change to those
/// connections' types broke that, and is worth a bug report.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RelayPath {
    Direct,
    Layered,
}

impl EncodeLabelValue for RelayPath {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text = match self {
            RelayPath::Direct => "direct",
            RelayPath::Layered => "layered",
        };
        EncodeLabelValue::encode(&text, encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayPathLabels {
    path: RelayPath,
}

/// A greylisting state change (GW-14).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum GreylistChange {
    Greylisted,
    Released,
}

impl EncodeLabelValue for GreylistChange {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text = match self {
            GreylistChange::Greylisted => "greylisted",
            GreylistChange::Released => "released",
        };
        EncodeLabelValue::encode(&text, encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GreylistChangeLabels {
    change: GreylistChange,
}

/// What happened to a request that greylisting would refuse: `refused` in mode
/// `enforce`, `forwarded` in mode `report`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum GreylistOutcome {
    Refused,
    Forwarded,
}

impl EncodeLabelValue for GreylistOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text = match self {
            GreylistOutcome::Refused => "refused",
            GreylistOutcome::Forwarded => "forwarded",
        };
        EncodeLabelValue::encode(&text, encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GreylistOutcomeLabels {
    outcome: GreylistOutcome,
}

/// The greylisting metrics, cloneable (they share their values with the registry) so
/// that the greylist can update them from its own timers.
#[derive(Clone, Default)]
pub struct GreylistMetrics {
    greylisted: Gauge,
    changes: Family<GreylistChangeLabels, Counter>,
    turned_away: Family<GreylistOutcomeLabels, Counter>,
}

impl GreylistMetrics {
    pub fn set_greylisted(&self, endpoints: usize) {
        self.greylisted
            .set(i64::try_from(endpoints).unwrap_or(i64::MAX));
    }

    pub fn changed(&self, change: GreylistChange) {
        self.changes
            .get_or_create(&GreylistChangeLabels { change })
            .inc();
    }

    pub fn turned_away(&self, outcome: GreylistOutcome) {
        self.turned_away
            .get_or_create(&GreylistOutcomeLabels { outcome })
            .inc();
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A route class's request metrics, resolved once: counting a request then takes no
/// label lookup (hashing and locking a family's map on every request showed in profiles).
/// Each is created on its first use, so that the exposition lists only what happened.
struct ClassMetrics {
    duration: OnceLock<Histogram>,
    /// The counter of status `100 + i` at `i`.
    by_status: Box<[OnceLock<Counter>]>,
}

const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<ClassLabels, Histogram, fn() -> Histogram>,
    /// By [`RouteClass::index`].
    classes: [ClassMetrics; RouteClass::ALL.len()],
    open_connections: Gauge,
    open_websockets: Gauge,
    websocket_relays: Family<RelayPathLabels, Counter>,
    rejected_connections: Counter,
    registry_reloads: Family<ReloadLabels, Counter>,
    rejected_heads: Family<StatusLabels, Counter>,
    greylist: GreylistMetrics,
    refused_bodies: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portico");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<ClassLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let open_connections = Gauge::default();
        let open_websockets = Gauge::default();
        let websocket_relays = Family::<RelayPathLabels, Counter>::default();
        let rejected_connections = Counter::default();
        let registry_reloads = Family::<ReloadLabels, Counter>::default();
        let rejected_heads = Family::<StatusLabels, Counter>::default();
        let refused_bodies = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route class and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head, by route class",
            duration.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        registry.register(
            "open_websockets",
            "WebSockets relayed to backends now",
            open_websockets.clone(),
        );
        registry.register(
            "websocket_relays",
            "WebSockets relayed, by how the relay reaches the connections: direct, or layered (slower; expected never)",
            websocket_relays.clone(),
        );
        registry.register(
            "rejected_connections",
            "Connections answered 503 because the instance was at its connection limit",
            rejected_connections.clone(),
        );
        registry.register(
            "registry_reloads",
            "Routing table rebuilds from the registry, by result",
            registry_reloads.clone(),
        );
        registry.register(
            "rejected_request_heads",
            "Request heads refused before routing (malformed, oversized), by status",
            rejected_heads.clone(),
        );
        let greylist = GreylistMetrics::default();
        registry.register(
            "greylisted_endpoints",
            "Backend endpoints greylisted as slow now (GW-14)",
            greylist.greylisted.clone(),
        );
        registry.register(
            "greylist_changes",
            "Endpoints greylisted or released, by change",
            greylist.changes.clone(),
        );
        registry.register(
            "greylist_turned_away",
            "Requests to greylisted endpoints while busy: refused (enforce) or forwarded anyway (report)",
            greylist.turned_away.clone(),
        );
        registry.register(
            "refused_request_bodies",
            "Requests answered 413 because their body passed a limit, by reason (request_size, file_size)",
            refused_bodies.clone(),
        );
        let classes = std::array::from_fn(|_| ClassMetrics {
            duration: OnceLock::new(),
            by_status: (0..STATUSES).map(|_| OnceLock::new()).collect(),
        });
        Metrics {
            registry,
            greylist,
            requests,
            duration,
            classes,
            open_connections,
            open_websockets,
            websocket_relays,
            rejected_connections,
            registry_reloads,
            rejected_heads,
            refused_bodies,
        }
    }

    pub fn request(&self, class: RouteClass, status: u16, seconds: f64) {
        let metrics = &self.classes[class.index()];
        let labels = || RequestLabels { class, status };
        match metrics
            .by_status
            .get(usize::from(status.wrapping_sub(FIRST_STATUS)))
        {
            Some(slot) => slot
                .get_or_init(|| self.requests.get_or_create(&labels()).clone())
                .inc(),
            None => self.requests.get_or_create(&labels()).inc(),
        };
        metrics
            .duration
            .get_or_init(|| self.duration.get_or_create(&ClassLabels { class }).clone())
            .observe(seconds);
    }

    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    pub fn connection_rejected(&self) {
        self.rejected_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.open_connections.dec();
    }

    pub fn websocket_opened(&self) {
        self.open_websockets.inc();
    }

    pub fn websocket_relayed(&self, path: RelayPath) {
        self.websocket_relays
            .get_or_create(&RelayPathLabels { path })
            .inc();
    }

    pub fn websocket_closed(&self) {
        self.open_websockets.dec();
    }

    pub fn registry_reload(&self, result: ReloadResult) {
        self.registry_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    pub fn rejected_head(&self, status: u16) {
        self.rejected_heads
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// Handles on the greylisting metrics (GW-14).
    pub fn greylist(&self) -> GreylistMetrics {
        self.greylist.clone()
    }

    /// A request body refused with 413, by the limit it passed (GW-13).
    pub fn body_refused(&self, reason: &str) {
        self.refused_bodies
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_class_has_its_slot() {
        for (i, class) in RouteClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i, "{class:?}");
        }
        let metrics = Metrics::new();
        metrics.request(RouteClass::Static, 200, 0.001);
        metrics.request(RouteClass::Unrouted, 404, 0.001);
        let text = metrics.encode();
        assert!(text.contains("class=\"static\""), "{text}");
    }
}
