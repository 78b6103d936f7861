//! What the vault counts for an operator's metrics endpoint: plain atomic counters and
//! fixed-bucket histograms, with no metrics library. The server renders them (Prometheus text);
//! the store times its commits with the same [`Histogram`]. Counts are per process (per node):
//! nothing here is shared through the database.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::rules::CallMode;

/// A histogram with fixed upper bounds (`le`), safe to observe from many tasks at once.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; the last one is `+Inf`.
    buckets: Vec<AtomicU64>,
    /// Sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

/// A consistent read of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bound and cumulative count of each finite bucket, in order.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the observations.
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let at = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(at) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// The buckets made cumulative; the count is the sum of the buckets read, so the `+Inf`
    /// bucket and the count always agree.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            running += bucket.load(Ordering::Relaxed);
            buckets.push((*bound, running));
        }
        let overflow = self
            .buckets
            .last()
            .map_or(0, |bucket| bucket.load(Ordering::Relaxed));
        HistogramSnapshot {
            buckets,
            count: running + overflow,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// How a refresh at an OAuth provider ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New tokens.
    Refreshed,
    /// The provider refused the refresh token (`invalid_grant`): the user must reconnect.
    InvalidGrant,
    /// Any other failure (the provider unreachable or erring, the provider removed).
    Failed,
}

impl RefreshOutcome {
    /// Every outcome, in the order they are rendered.
    pub const ALL: [RefreshOutcome; 3] = [
        RefreshOutcome::Refreshed,
        RefreshOutcome::InvalidGrant,
        RefreshOutcome::Failed,
    ];

    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshOutcome::Refreshed => "refreshed",
            RefreshOutcome::InvalidGrant => "invalid_grant",
            RefreshOutcome::Failed => "failed",
        }
    }
}

/// The decisions on credential use and the OAuth refreshes, counted where they are decided.
#[derive(Debug, Default)]
pub struct Counters {
    /// Releases committed, by mode (retrieve, proxy).
    releases: [AtomicU64; 2],
    /// Refusals recorded, by mode.
    denials: [AtomicU64; 2],
    /// Proxied calls rules held, parked as pending approvals.
    holds: AtomicU64,
    /// Refreshes asked of a provider, by [`RefreshOutcome`].
    refreshes: [AtomicU64; 3],
}

/// A read of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountersSnapshot {
    /// Releases in retrieve mode, then in proxy mode.
    pub releases: [u64; 2],
    /// Denials in retrieve mode, then in proxy mode.
    pub denials: [u64; 2],
    /// Holds.
    pub holds: u64,
    /// Refreshes by [`RefreshOutcome::ALL`].
    pub refreshes: [u64; 3],
}

/// The label value of a mode, and the order of per-mode counts.
pub const MODES: [(CallMode, &str); 2] =
    [(CallMode::Retrieve, "retrieve"), (CallMode::Proxy, "proxy")];

fn mode_index(mode: CallMode) -> usize {
    match mode {
        CallMode::Retrieve => 0,
        CallMode::Proxy => 1,
    }
}

impl Counters {
    pub(crate) fn released(&self, mode: CallMode) {
        self.releases[mode_index(mode)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn denied(&self, mode: CallMode) {
        self.denials[mode_index(mode)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn held(&self) {
        self.holds.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refreshed(&self, outcome: RefreshOutcome) {
        let at = match outcome {
            RefreshOutcome::Refreshed => 0,
            RefreshOutcome::InvalidGrant => 1,
            RefreshOutcome::Failed => 2,
        };
        self.refreshes[at].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            releases: self.releases.each_ref().map(load),
            denials: self.denials.each_ref().map(load),
            holds: load(&self.holds),
            refreshes: self.refreshes.each_ref().map(load),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        static BOUNDS: [f64; 3] = [1.0, 2.0, 4.0];
        let h = Histogram::new(&BOUNDS);
        for v in [0.5, 1.0, 1.5, 3.0, 9.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (2.0, 3), (4.0, 4)]);
        assert_eq!(s.count, 5);
        assert!((s.sum - 15.0).abs() < 1e-9);
    }
}
