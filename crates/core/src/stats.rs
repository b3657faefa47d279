//! Latency statistics: an HDR histogram in nanoseconds, reported in microseconds.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use pushbench_schema::Metrics;

/// Per-message latencies of a case, 1 ns to 1 hour at 3 significant digits.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        // Bounds are constants that hdrhistogram accepts.
        let hist =
            Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
        LatencyHistogram(hist)
    }

    /// Records one latency (saturating at the upper bound rather than failing).
    pub fn record(&mut self, latency: Duration) {
        self.0.saturating_record(latency.as_nanos().max(1) as u64);
    }

    /// Number of latencies recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds another histogram's counts to this one, losslessly.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// The value at `quantile` (0..=1), in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> f64 {
        self.0.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Fills the latency fields of `metrics` (left empty when nothing was recorded).
    pub fn fill(&self, metrics: &mut Metrics) {
        if self.is_empty() {
            return;
        }
        metrics.mean_us = Some(self.0.mean() / 1000.0);
        metrics.p50_us = Some(self.quantile_us(0.5));
        metrics.p90_us = Some(self.quantile_us(0.9));
        metrics.p99_us = Some(self.quantile_us(0.99));
        metrics.p999_us = Some(self.quantile_us(0.999));
        metrics.max_us = Some(self.0.max() as f64 / 1000.0);
    }

    /// HdrHistogram V2 serialization, base64: mergeable across processes and hosts.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::new();
        // Serializing into a Vec only fails for histograms that cannot exist here.
        let _ = V2Serializer::new().serialize(&self.0, &mut bytes);
        STANDARD.encode(bytes)
    }

    /// Reads a histogram written by [`LatencyHistogram::to_base64`].
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text)
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        let hist: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram is not HdrHistogram V2: {e:?}"))?;
        let mut out = LatencyHistogram::new();
        out.0
            .add(&hist)
            .map_err(|e| format!("histogram out of range: {e:?}"))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_round_trip() {
        let mut h = LatencyHistogram::new();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let mut m = Metrics::default();
        h.fill(&mut m);
        assert!((m.p50_us.unwrap() - 500.0).abs() < 1.0, "{m:?}");
        assert!((m.p99_us.unwrap() - 990.0).abs() < 1.0, "{m:?}");
        let back = LatencyHistogram::from_base64(&h.to_base64()).unwrap();
        assert_eq!(back.len(), 1000);
        assert_eq!(back.quantile_us(0.99), h.quantile_us(0.99));
        let mut merged = back.clone();
        merged.merge(&h);
        assert_eq!(merged.len(), 2000);
        assert!(LatencyHistogram::from_base64("not base64!").is_err());
    }
}
