//! Prometheus metrics of the gateway (OPS-3), exposed on the operators' listener.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What kind of target a request was routed to; `unrouted` for requests the gateway
/// answered itself with an error before choosing one.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RouteClass {
    Webapp,
    Api,
    Core,
    Unrouted,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Webapp => "webapp",
            RouteClass::Api => "api",
            RouteClass::Core => "core",
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
struct StatusLabels {
    status: u16,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<ClassLabels, Histogram, fn() -> Histogram>,
    open_connections: Gauge,
    open_websockets: Gauge,
    rejected_connections: Counter,
    registry_reloads: Family<ReloadLabels, Counter>,
    rejected_heads: Family<StatusLabels, Counter>,
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
        let rejected_connections = Counter::default();
        let registry_reloads = Family::<ReloadLabels, Counter>::default();
        let rejected_heads = Family::<StatusLabels, Counter>::default();
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
        Metrics {
            registry,
            requests,
            duration,
            open_connections,
            open_websockets,
            rejected_connections,
            registry_reloads,
            rejected_heads,
        }
    }

    pub fn request(&self, class: RouteClass, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { class, status })
            .inc();
        self.duration
            .get_or_create(&ClassLabels { class })
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

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
