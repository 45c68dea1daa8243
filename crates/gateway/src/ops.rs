//! The operators' listener (OPS-3): `/metrics`, `/healthz`, `/readyz`. It is meant for a
//! private network or loopback, never the public side.

use crate::body::{full, Body};
use crate::server::Gateway;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Answers one operators' request.
pub fn answer<B>(gateway: &Gateway, request: &Request<B>) -> Response<Body> {
    let (status, content_type, text) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gateway.metrics().encode(),
        ),
        "/healthz" => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok\n".to_string(),
        ),
        // 404, not 503: a load balancer takes the node out of the rotation without
        // counting it down, which would close the sessions still finishing through it
        // (HAProxy's `http-check disable-on-404`; any other client sees "not ready").
        "/readyz" if gateway.is_draining() => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not ready: draining\n".to_string(),
        ),
        "/readyz" if gateway.is_ready() => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ready\n".to_string(),
        ),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            "not ready: no registry installed yet\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Serves the operators' endpoints until `shutdown`.
pub async fn serve(gateway: Gateway, listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = answer(&gateway, &request);
                    async move { Ok::<_, Infallible>(response) }
                });
            // Operators' clients get the same deadline for a request head as everyone's.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GatewayConfig;

    #[test]
    fn readiness_waits_for_a_registry_and_ends_with_the_drain() {
        let config = GatewayConfig::new(vec!["portico.localhost".into()], vec!["eu1".into()]);
        let gateway = Gateway::new(config, Default::default());
        let request = Request::get("/readyz").body(()).unwrap();
        assert_eq!(
            answer(&gateway, &request).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            answer(&gateway, &Request::get("/healthz").body(()).unwrap()).status(),
            StatusCode::OK
        );
        assert!(gateway
            .install(&portico_store::Registry::default())
            .is_empty());
        assert_eq!(answer(&gateway, &request).status(), StatusCode::OK);
        gateway.start_draining();
        assert_eq!(answer(&gateway, &request).status(), StatusCode::NOT_FOUND);
    }
}
