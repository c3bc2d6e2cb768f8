//! The operator's own endpoints: `/metrics` (Prometheus text), `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// Ready once the caches are synced and the configured components are loaded; shared by the
/// wiring, which sets it, and the endpoint, which reads it.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<prometheus_client::registry::Registry>,
    readiness: Readiness,
}

/// The routes: `/metrics` when `metrics` is given, the probes when `probes` is set.
fn router(metrics: Option<Arc<prometheus_client::registry::Registry>>, probes: bool, readiness: Readiness) -> Router {
    let state = AdminState { metrics: metrics.clone().unwrap_or_default(), readiness };
    let mut router = Router::new();
    if metrics.is_some() {
        router = router.route("/metrics", get(serve_metrics));
    }
    if probes {
        router = router.route("/healthz", get(|| async { "ok" })).route("/readyz", get(serve_readyz));
    }
    router.with_state(state)
}

async fn serve_metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.metrics) {
        Ok(()) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], error.to_string()),
    }
}

async fn serve_readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.readiness.ready() { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "caches syncing or components loading") }
}

/// Binds the endpoints (one listener when both share an address) and serves them until the
/// task is dropped. Returns the bound addresses (metrics, health), useful with port 0.
///
/// # Errors
///
/// If an address cannot be bound; the operator does not start without its probes.
pub async fn serve(
    metrics_addr: Option<SocketAddr>,
    health_addr: Option<SocketAddr>,
    metrics: Arc<prometheus_client::registry::Registry>,
    readiness: Readiness,
) -> anyhow::Result<(Option<SocketAddr>, Option<SocketAddr>)> {
    use anyhow::Context as _;
    let mut bound = (None, None);
    let plans: Vec<(SocketAddr, bool, bool)> = match (metrics_addr, health_addr) {
        (Some(m), Some(h)) if m == h => vec![(m, true, true)],
        (m, h) => m.map(|m| (m, true, false)).into_iter().chain(h.map(|h| (h, false, true))).collect(),
    };
    for (addr, with_metrics, with_probes) in plans {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        if with_metrics {
            bound.0 = Some(local);
        }
        if with_probes {
            bound.1 = Some(local);
        }
        let app = router(with_metrics.then(|| metrics.clone()), with_probes, readiness.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, %local, "Endpoint server stopped");
            }
        });
    }
    Ok(bound)
}
