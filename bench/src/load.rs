//! The load generator: a fixed number of HTTP/1.1 keep-alive connections,
//! each sending its next request as soon as the last is answered, until a
//! request count or a time bound is reached. Latencies go to an HDR
//! histogram per connection, merged at the end; answers are counted by
//! status and problem `code`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How much load, for how long at most.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub connections: usize,
    pub requests: usize,
    pub max_time: Duration,
}

/// One request: a `GET`, or a `POST` of a JSON body.
pub struct Call {
    pub method: hyper::Method,
    pub path: String,
    pub body: Option<String>,
    /// An `Authorization: Bearer` token.
    pub bearer: Option<String>,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: hyper::Method::GET,
            path: path.into(),
            body: None,
            bearer: None,
        }
    }

    pub fn post(path: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            method: hyper::Method::POST,
            path: path.into(),
            body: Some(body.into()),
            bearer: None,
        }
    }

    pub fn with_bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }
}

/// What a run measured.
pub struct Report {
    pub sent: usize,
    pub elapsed: Duration,
    /// Microseconds from sending a request to reading its whole answer.
    pub latency: Histogram<u64>,
    /// Answers by `"<status> <code>"` (the code of problem bodies only).
    pub outcomes: BTreeMap<String, usize>,
    /// The latency of each kind of answer, as `latency` is of all.
    pub latency_by_outcome: BTreeMap<String, Histogram<u64>>,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in milliseconds.
    pub fn millis_at(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Adds `other`'s requests, time and answers to these.
    pub fn absorb(&mut self, other: Report) -> anyhow::Result<()> {
        self.sent += other.sent;
        self.elapsed += other.elapsed;
        self.latency.add(&other.latency)?;
        for (outcome, count) in other.outcomes {
            *self.outcomes.entry(outcome).or_default() += count;
        }
        for (outcome, latency) in other.latency_by_outcome {
            match self.latency_by_outcome.get_mut(&outcome) {
                Some(into) => into.add(&latency)?,
                None => {
                    self.latency_by_outcome.insert(outcome, latency);
                }
            }
        }
        Ok(())
    }

    /// p50 and p99 in milliseconds of the answers of one kind, e.g. `"201"`.
    pub fn millis_of(&self, outcome: &str) -> Option<[f64; 2]> {
        let latency = self.latency_by_outcome.get(outcome)?;
        Some([0.5, 0.99].map(|q| latency.value_at_quantile(q) as f64 / 1000.0))
    }

    pub fn count(&self, outcome: &str) -> usize {
        self.outcomes.get(outcome).copied().unwrap_or(0)
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(outcome, _)| outcome.starts_with('5'))
            .map(|(_, count)| count)
            .sum()
    }
}

/// Sends `shape.requests` requests (`request(n)` makes the n-th) over
/// `shape.connections` connections spread over `targets`.
pub async fn run(
    targets: &[SocketAddr],
    shape: Shape,
    request: impl Fn(usize) -> Call + Send + Sync + 'static,
) -> anyhow::Result<Report> {
    run_paced(targets, shape, None, request).await
}

/// As [`run`], but with `pace` each connection sends at most one request
/// per `pace`: a steady load of other clients beside a heavier one, whose
/// latency is what is measured.
pub async fn run_paced(
    targets: &[SocketAddr],
    shape: Shape,
    pace: Option<Duration>,
    request: impl Fn(usize) -> Call + Send + Sync + 'static,
) -> anyhow::Result<Report> {
    let next = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + shape.max_time;
    let mut connections = Vec::with_capacity(shape.connections);
    for n in 0..shape.connections {
        let target = targets[n % targets.len()];
        let next = next.clone();
        let request = request.clone();
        connections.push(tokio::spawn(async move {
            drive(
                target,
                shape.requests,
                deadline,
                pace,
                &next,
                request.as_ref(),
            )
            .await
        }));
    }
    let mut report = Report::empty()?;
    for connection in connections {
        report.absorb(connection.await??)?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

impl Report {
    fn empty() -> anyhow::Result<Self> {
        Ok(Self {
            sent: 0,
            elapsed: Duration::ZERO,
            latency: latency_histogram()?,
            outcomes: BTreeMap::new(),
            latency_by_outcome: BTreeMap::new(),
        })
    }
}

/// One connection's loop.
async fn drive(
    target: SocketAddr,
    total: usize,
    deadline: Instant,
    pace: Option<Duration>,
    next: &AtomicUsize,
    request: &(impl Fn(usize) -> Call + Send + Sync),
) -> anyhow::Result<Report> {
    let stream = TcpStream::connect(target)
        .await
        .with_context(|| format!("cannot connect to {target}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let host = target.to_string();
    let mut report = Report::empty()?;
    let mut ticks = pace.map(|pace| {
        let mut ticks = tokio::time::interval(pace);
        // A late answer does not make the next requests come in a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= total || Instant::now() >= deadline {
            break;
        }
        let call = request(n);
        let mut builder = Request::builder()
            .method(call.method)
            .uri(call.path)
            .header("host", &host);
        if let Some(token) = &call.bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let http_request = match call.body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))?,
            None => builder.body(Full::new(Bytes::new()))?,
        };
        sender.ready().await?;
        let asked = Instant::now();
        let response = sender.send_request(http_request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let micros = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
        let outcome = outcome(status, &body);
        report.latency.saturating_record(micros);
        match report.latency_by_outcome.get_mut(&outcome) {
            Some(latency) => latency.saturating_record(micros),
            None => {
                let mut latency = latency_histogram()?;
                latency.saturating_record(micros);
                report.latency_by_outcome.insert(outcome.clone(), latency);
            }
        }
        report.sent += 1;
        *report.outcomes.entry(outcome).or_default() += 1;
    }
    Ok(report)
}

fn outcome(status: hyper::StatusCode, body: &[u8]) -> String {
    let code = (!status.is_success())
        .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
        .flatten()
        .and_then(|problem| problem["code"].as_str().map(str::to_owned));
    match code {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// 1 µs to 60 s at three significant digits.
fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}
