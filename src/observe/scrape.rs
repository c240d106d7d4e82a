//! The worker side of a `/metrics` scrape (spec §10).
//!
//! The scrape arrives on a worker like any request; the worker cannot see the other workers'
//! values or the control thread's, so it sends a `Report::Scrape` with a one-shot reply
//! channel to the control thread, which renders the text for the whole process. The worker
//! awaits the reply (`recv_async`, never a blocking receive) for at most [`SCRAPE_TIMEOUT`];
//! if the control thread does not answer (busy with a long reload, or gone), the client gets
//! a 503 JSON error. Worker thread only.

use std::time::Duration;

use crate::error::ProxyError;
use crate::http::response::Response;
use crate::worker::commands::Report;
use crate::worker::state::WorkerState;

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a worker waits for the control thread's text (below Prometheus's default
/// 10 s scrape timeout, so the scraper sees our 503 rather than its own timeout).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers a metrics scrape: 200 with the text of the whole process, or 503.
pub async fn answer(worker: &WorkerState, request_id: &str) -> Response {
    answer_within(worker, request_id, SCRAPE_TIMEOUT).await
}

async fn answer_within(worker: &WorkerState, request_id: &str, timeout: Duration) -> Response {
    match fetch(worker, timeout).await {
        Some(text) => Response::new(200)
            .header("Content-Type", CONTENT_TYPE)
            .header("Cache-Control", "no-store")
            .header("X-Request-ID", request_id.to_owned())
            .header("X-Content-Type-Options", "nosniff")
            .body(text.into_bytes()),
        None => ProxyError::MetricsUnavailable.to_response(request_id),
    }
}

/// Asks the control thread for the text.
async fn fetch(worker: &WorkerState, timeout: Duration) -> Option<String> {
    let (reply, text) = flume::bounded(1);
    if worker.reports.send(Report::Scrape { reply }).is_err() {
        tracing::warn!(worker = worker.id, "metrics: the control thread is gone");
        return None;
    }
    match monoio::time::timeout(timeout, text.recv_async()).await {
        Ok(Ok(text)) => Some(text),
        Ok(Err(_)) => {
            tracing::warn!(
                worker = worker.id,
                "metrics: the control thread dropped the scrape"
            );
            None
        }
        Err(_) => {
            tracing::warn!(
                worker = worker.id,
                ?timeout,
                "metrics: the control thread did not answer in time"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;
    use crate::snapshot::Snapshot;

    /// Runs `answer_within` on a worker whose control thread is played by `control`.
    fn scrape_with(
        control: impl FnOnce(crossbeam_channel::Receiver<Report>) + Send + 'static,
    ) -> Response {
        let (reports, inbox) = crossbeam_channel::unbounded();
        let control = std::thread::spawn(move || control(inbox));
        let loaded = crate::config::parse_str("t.yaml", "metrics:\n  enabled: true\n").unwrap();
        let snapshot = Arc::new(Snapshot::build(loaded.config).unwrap());
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        let resp = rt.block_on(async move {
            let worker =
                WorkerState::new(0, snapshot, Arc::default(), Arc::default(), reports).unwrap();
            answer_within(&worker, "rid", Duration::from_millis(200)).await
        });
        control.join().unwrap();
        resp
    }

    fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
        resp.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    #[test]
    fn the_control_thread_answers() {
        let resp = scrape_with(|inbox| {
            if let Ok(Report::Scrape { reply }) = inbox.recv() {
                // Answer from another thread after a while: the worker awaits asynchronously.
                std::thread::sleep(Duration::from_millis(20));
                reply.send("up 1\n".to_owned()).unwrap();
            }
        });
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"up 1\n");
        assert_eq!(header(&resp, "content-type"), Some(CONTENT_TYPE));
        assert_eq!(header(&resp, "x-request-id"), Some("rid"));
    }

    #[test]
    fn no_answer_is_a_503() {
        let silent = scrape_with(|inbox| {
            let held = inbox.recv();
            std::thread::sleep(Duration::from_millis(400));
            drop(held);
        });
        assert_eq!(silent.status, 503);
        assert_eq!(header(&silent, "content-type"), Some("application/json"));
        let dropped = scrape_with(|inbox| drop(inbox.recv()));
        assert_eq!(dropped.status, 503);
        let gone = scrape_with(drop);
        assert_eq!(gone.status, 503);
    }
}
