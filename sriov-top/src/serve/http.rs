//! The agent's HTTP endpoints (hyper, HTTP/1.1): `/metrics` (OpenMetrics
//! when the scraper's `Accept` asks for it, else the Prometheus text
//! format), `/healthz` (200 while the collector ticks, 503 otherwise) and
//! `/` (a page naming both). Anything else is 404; methods other than GET
//! and HEAD are 405.
use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{ACCEPT, CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{
    encode::{self, OPENMETRICS, PROMETHEUS_TEXT},
    health::Health,
};

/// What the handlers share.
pub struct Shared {
    pub metrics: encode::Exposition,
    pub health: Arc<Mutex<Health>>,
}

/// A connection that sends nothing for this long is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `listener` until the task is dropped; a failed connection is
/// that connection's problem only.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and the like: wait a little rather than spin
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&req, &shared)) }
            });
            let mut b = http1::Builder::new();
            b.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let _ = b.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether the scraper asked for OpenMetrics (Prometheus sends
/// `application/openmetrics-text;version=1.0.0,...;q=0.5,text/plain;...`).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut it = part.split(';').map(str::trim);
            let is_om = it.next() == Some("application/openmetrics-text");
            let q_zero = it.any(|p| p.replace(' ', "") == "q=0");
            is_om && !q_zero
        })
    })
}

/// Answer one request.
pub fn handle(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    respond(
        req.method(),
        req.uri().path(),
        req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()),
        shared,
    )
}

/// [`handle`] without hyper's body type (host tests).
pub fn respond(
    method: &Method,
    path: &str,
    accept: Option<&str>,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => {
            let om = wants_openmetrics(accept);
            match shared.metrics.scrape(om) {
                Ok(body) => {
                    let mut r = text(StatusCode::OK, body);
                    let ct = if om { OPENMETRICS } else { PROMETHEUS_TEXT };
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
                    r
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
            }
        }
        "/healthz" => match encode::lock(&shared.health).check() {
            Ok(msg) => text(StatusCode::OK, format!("ok: {msg}\n")),
            Err(msg) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unhealthy: {msg}\n"),
            ),
        },
        "/" => text(
            StatusCode::OK,
            "sriov-top agent: /metrics (Prometheus, OpenMetrics), /healthz\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /healthz\n",
        ),
    }
}
