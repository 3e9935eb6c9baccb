//! The server's limits: a per-token request rate, a cap on open streams,
//! and the in-flight ingest budget that turns a slow engine into
//! backpressure (a writer waits, then gets UNAVAILABLE) instead of memory
//! growth. Over a limit a call fails with RESOURCE_EXHAUSTED naming it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::ServerOptions;

/// Ingest budget unit: permits are KiB of request.
const BUDGET_UNIT: usize = 1024;

/// Shared by every service of one server.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Requests per second per token, and the burst allowed.
    rate: Option<(f64, f64)>,
    buckets: Mutex<HashMap<String, Bucket>>,
    streams: Arc<Semaphore>,
    max_streams: usize,
    ingest: Arc<Semaphore>,
    ingest_units: usize,
    ingest_wait: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limits {
    pub(crate) fn new(o: &ServerOptions) -> Limits {
        let ingest_units =
            (o.max_inflight_ingest_bytes / BUDGET_UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Limits {
            rate: o
                .rate_limit_per_token
                .filter(|r| *r > 0.0)
                .map(|r| (r, o.rate_limit_burst.max(1.0))),
            buckets: Mutex::new(HashMap::new()),
            streams: Arc::new(Semaphore::new(o.max_concurrent_streams)),
            max_streams: o.max_concurrent_streams,
            ingest: Arc::new(Semaphore::new(ingest_units)),
            ingest_units,
            ingest_wait: o.ingest_wait,
        }
    }

    /// Counts one request (or one streamed batch) against the token's
    /// rate: a token bucket of `burst` requests refilled at the rate.
    pub(crate) fn charge(&self, token_id: &str) -> Result<(), Status> {
        let Some((rate, burst)) = self.rate else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(token_id.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - b.tokens) / rate * 1000.0).ceil();
            Err(Status::resource_exhausted(format!(
                "rate limit of {rate} requests/s for token {token_id} exceeded; retry in {wait_ms} ms"
            )))
        }
    }

    /// How long a write waits for room.
    pub(crate) fn ingest_wait(&self) -> Duration {
        self.ingest_wait
    }

    /// A slot for one open stream (held until the stream ends).
    pub(crate) fn stream_slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} streams are open, the server's limit (max_concurrent_streams); retry later",
                self.max_streams
            ))
        })
    }

    /// Room for a write request of `bytes` in the ingest budget: waits up
    /// to the configured time while earlier writes drain into the engine,
    /// then fails with UNAVAILABLE (retry with backoff; an exactly-once
    /// batch may be resent as it is).
    pub(crate) async fn ingest_room(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Status> {
        let units = bytes.div_ceil(BUDGET_UNIT).clamp(1, self.ingest_units);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.ingest_wait, self.ingest.clone().acquire_many_owned(units))
            .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Status::unavailable("the server is shutting down")),
            Err(_) => Err(Status::unavailable(format!(
                "ingest is backed up: {} MiB of writes are waiting for the engine after {} ms; \
                 retry with backoff (resending a batch with the same producer_id and sequence is safe)",
                (self.ingest_units * BUDGET_UNIT) >> 20,
                self.ingest_wait.as_millis()
            ))),
        }
    }
}

/// Waits while `full()` holds, checking every 10 ms, for at most `wait`;
/// UNAVAILABLE with retry advice if it still holds then. Ingest calls it
/// with the engine's "write buffers full" before queueing a batch, so an
/// overloaded engine turns into retries at the clients, not into requests
/// piling up in the server.
pub(crate) async fn wait_while(full: impl Fn() -> bool, wait: Duration) -> Result<(), Status> {
    let deadline = Instant::now() + wait;
    while full() {
        if Instant::now() >= deadline {
            return Err(Status::unavailable(format!(
                "the engine's write buffers are full (flushes are behind) after waiting {} ms; \
                 retry with backoff (resending a batch with the same producer_id and sequence is safe)",
                wait.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use super::*;

    fn limits(f: impl FnOnce(&mut ServerOptions)) -> Limits {
        let mut o = ServerOptions::default();
        f(&mut o);
        Limits::new(&o)
    }

    #[test]
    fn rate_limit_allows_the_burst_then_refuses_per_token() {
        let l = limits(|o| {
            o.rate_limit_per_token = Some(0.5);
            o.rate_limit_burst = 3.0;
        });
        for _ in 0..3 {
            l.charge("a").unwrap();
        }
        let e = l.charge("a").unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("token a"), "{}", e.message());
        // Another token has its own bucket.
        l.charge("b").unwrap();
        // No limit configured: never refused.
        let free = limits(|_| {});
        for _ in 0..10_000 {
            free.charge("a").unwrap();
        }
    }

    #[test]
    fn streams_are_capped_and_released() {
        let l = limits(|o| o.max_concurrent_streams = 2);
        let a = l.stream_slot().unwrap();
        let _b = l.stream_slot().unwrap();
        let e = l.stream_slot().unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        drop(a);
        let _again = l.stream_slot().unwrap();
    }

    #[tokio::test]
    async fn full_write_buffers_wait_then_are_unavailable() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Drains after a few checks: the write goes ahead.
        let checks = AtomicUsize::new(0);
        wait_while(
            || checks.fetch_add(1, Ordering::SeqCst) < 3,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(checks.load(Ordering::SeqCst), 4);
        // Never drains: UNAVAILABLE after the wait, with retry advice.
        let started = Instant::now();
        let e = wait_while(|| true, Duration::from_millis(40))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(e.code(), tonic::Code::Unavailable);
        assert!(e.message().contains("write buffers are full") && e.message().contains("retry"));
    }

    #[tokio::test]
    async fn full_ingest_budget_waits_then_is_unavailable() {
        let l = limits(|o| {
            o.max_inflight_ingest_bytes = 64 << 10;
            o.ingest_wait = Duration::from_millis(50);
        });
        let held = l.ingest_room(60 << 10).await.unwrap();
        let started = Instant::now();
        let e = l.ingest_room(8 << 10).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(e.code(), tonic::Code::Unavailable);
        assert!(e.message().contains("retry"), "{}", e.message());
        // A request bigger than the whole budget takes all of it, waiting
        // for the room the held one frees.
        let waiter = l.ingest_room(1 << 20);
        drop(held);
        let _all = waiter.await.unwrap();
    }
}
