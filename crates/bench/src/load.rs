//! The load generator and the admin reads: batches posted by concurrent senders, pollers of
//! `/metrics` and `/v1/status`, and the counters the parts read back from the service.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::{ADMIN, SENDERS, WRITE_KEY};

/// Posts every body to `/v1/batch` from `SENDERS` concurrent senders; the time it took.
pub async fn send_all(url: &str, bodies: Arc<Vec<String>>) -> Result<Duration> {
    send_spread(&[url.to_string()], bodies).await
}

/// [`send_all`] spread over several instances: batch `b` goes to `urls[b % urls.len()]`, as
/// a load balancer taking turns would send it.
pub async fn send_spread(urls: &[String], bodies: Arc<Vec<String>>) -> Result<Duration> {
    let count = bodies.len();
    send_made(urls, count, move |b| bodies[b].clone()).await
}

/// Posts `count` batches to `/v1/batch` from `SENDERS` concurrent senders, batch `b` made by
/// `body(b)` when its turn comes and sent to `urls[b % urls.len()]`; the time it took.
pub async fn send_made<F>(urls: &[String], count: usize, body: F) -> Result<Duration>
where
    F: Fn(usize) -> String + Send + Sync + 'static,
{
    if urls.is_empty() {
        bail!("no instance to send to");
    }
    let urls: Arc<Vec<String>> = Arc::new(urls.to_vec());
    let body = Arc::new(body);
    let http = reqwest::Client::builder().build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..SENDERS {
        let (body, next, http, urls) = (body.clone(), next.clone(), http.clone(), urls.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                let url = &urls[b % urls.len()];
                let r = http
                    .post(format!("{url}/v1/batch"))
                    .basic_auth(WRITE_KEY, Some(""))
                    .header("Content-Type", "application/json")
                    .body(body(b))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!(
                        "batch {b}: HTTP {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

/// `n` clients that each GET `/metrics` and `/v1/status` in turn, without pause, until
/// `stop` turns true (as scrapers and dashboards would, only harder). Returns the number of
/// answers they got.
pub fn start_pollers(
    url: &str,
    n: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Result<u64>>> {
    (0..n)
        .map(|i| {
            let (url, stop) = (url.to_string(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut done = 0u64;
                let paths = ["/metrics", "/v1/status"];
                while !*stop.borrow() {
                    let path = paths[(i + done as usize) % paths.len()];
                    http.get(format!("{url}{path}"))
                        .bearer_auth(ADMIN)
                        .send()
                        .await?
                        .error_for_status()?
                        .bytes()
                        .await?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect()
}

/// The body of an admin endpoint of the service.
async fn admin_get(url: &str, path: &str) -> Result<Bytes> {
    Ok(reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?)
}

/// The service's request and row counters (non-zero samples of `/metrics`).
pub async fn counters(url: &str) -> Result<Value> {
    let body = admin_get(url, "/metrics").await?;
    Ok(nonzero_counters(&String::from_utf8_lossy(&body)))
}

/// The non-zero request and row counters of a Prometheus text exposition.
fn nonzero_counters(metrics: &str) -> Value {
    let mut out = serde_json::Map::new();
    for l in metrics.lines() {
        if !(l.starts_with("iterable_lists_requests_total")
            || l.starts_with("iterable_lists_rows_total"))
        {
            continue;
        }
        if let Some((k, v)) = l.rsplit_once(' ')
            && let Ok(v) = v.parse::<f64>()
            && v > 0.0
        {
            out.insert(k.to_string(), json!(v));
        }
    }
    Value::Object(out)
}

/// The sum of `pending` over the destination's audiences, from `/v1/status`.
pub async fn pending_changes(url: &str) -> Result<u64> {
    let v: Value = serde_json::from_slice(&admin_get(url, "/v1/status").await?)?;
    let mut n = 0;
    for d in v["destinations"].as_array().into_iter().flatten() {
        for l in d["audiences"].as_array().into_iter().flatten() {
            n += l["pending"].as_u64().unwrap_or(0);
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nonzero_request_and_row_counters_are_kept() {
        let metrics = "# TYPE iterable_lists_requests_total counter\n\
                       iterable_lists_requests_total{op=\"subscribe\",outcome=\"ok\"} 1000\n\
                       iterable_lists_requests_total{op=\"subscribe\",outcome=\"429\"} 0\n\
                       iterable_lists_rows_total{outcome=\"delivered\"} 1e6\n\
                       iterable_lists_pending 12\n";
        assert_eq!(
            nonzero_counters(metrics),
            json!({"iterable_lists_requests_total{op=\"subscribe\",outcome=\"ok\"}": 1000.0,
                   "iterable_lists_rows_total{outcome=\"delivered\"}": 1e6})
        );
    }
}
