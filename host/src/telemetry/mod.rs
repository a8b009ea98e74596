//! Logs and metrics.

pub mod live;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests start many applications) keeps the first subscriber.
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Latency buckets in seconds: fine below 10 ms, where this server lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Policy call buckets in seconds: a call takes tens of microseconds, below
/// the first of [`LATENCY_BUCKETS`].
const POLICY_CALL_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
    1.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder. Metrics are per process, so every
/// application in one process (as in tests) shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .expect("the latency buckets are not empty")
                // A full name takes precedence over the suffix above.
                .set_buckets_for_metric(
                    Matcher::Full("policy_call_duration_seconds".into()),
                    POLICY_CALL_BUCKETS,
                )
                .expect("the policy call buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder was installed first, in which
            // case this handle renders nothing but the server still works.
            let _ = metrics::set_global_recorder(recorder);
            // Histogram samples pile up until they are folded into their
            // buckets; without this, a server nobody scrapes grows forever.
            let upkept = handle.clone();
            let upkeep = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkept.run_upkeep();
                    }
                });
            if let Err(err) = upkeep {
                tracing::error!(%err, "cannot start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}
