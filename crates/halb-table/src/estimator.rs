//! Rate estimation as IPVS does it.
//!
//! `net/netfilter/ipvs/ip_vs_est.c`: every 2 seconds the estimator takes the
//! difference of each cumulative counter, turns it into a per-second rate
//! and smooths it with an exponentially weighted moving average of weight
//! 1/4 (`e->cps += ((s64)rate - (s64)e->cps) >> 2`). The kernel keeps fixed
//! point; we keep `f64`, which rounds no worse. Sans-IO: fed counters and
//! `now`.

use crate::{Counters, Rates};
use std::time::{Duration, Instant};

/// The kernel's estimation period.
pub const ESTIMATOR_PERIOD: Duration = Duration::from_secs(2);

/// The counters an estimator follows (cumulative, never decreasing).
pub type RateCounters = Counters;

#[derive(Debug, Clone)]
pub struct Estimator {
    last: Counters,
    last_at: Option<Instant>,
    rates: Rates,
}

impl Default for Estimator {
    fn default() -> Self {
        Self::new()
    }
}

impl Estimator {
    pub fn new() -> Self {
        Estimator {
            last: Counters::default(),
            last_at: None,
            rates: Rates::default(),
        }
    }

    /// Feed the current cumulative counters. Call at least every
    /// [`ESTIMATOR_PERIOD`]; samples closer together than one period are
    /// ignored so the smoothing matches the kernel's.
    pub fn sample(&mut self, now: Instant, c: &Counters) {
        let Some(at) = self.last_at else {
            self.last = *c;
            self.last_at = Some(now);
            return;
        };
        let dt = now.saturating_duration_since(at);
        if dt < ESTIMATOR_PERIOD {
            return;
        }
        let secs = dt.as_secs_f64();
        let per_sec = |new: u64, old: u64| new.saturating_sub(old) as f64 / secs;
        let smooth = |avg: &mut f64, rate: f64| *avg += (rate - *avg) / 4.0;
        smooth(&mut self.rates.cps, per_sec(c.conns, self.last.conns));
        smooth(
            &mut self.rates.inpps,
            per_sec(c.packets_in, self.last.packets_in),
        );
        smooth(
            &mut self.rates.outpps,
            per_sec(c.packets_out, self.last.packets_out),
        );
        smooth(
            &mut self.rates.inbps,
            per_sec(c.bytes_in, self.last.bytes_in),
        );
        smooth(
            &mut self.rates.outbps,
            per_sec(c.bytes_out, self.last.bytes_out),
        );
        self.last = *c;
        self.last_at = Some(now);
    }

    pub fn rates(&self) -> Rates {
        self.rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_a_steady_rate() {
        let t0 = Instant::now();
        let mut e = Estimator::new();
        let mut c = Counters::default();
        e.sample(t0, &c);
        for i in 1..=40u64 {
            c.conns += 200; // 100 per second over 2 s
            c.bytes_in += 2000;
            e.sample(t0 + ESTIMATOR_PERIOD * i as u32, &c);
        }
        assert!((e.rates().cps - 100.0).abs() < 0.01, "{:?}", e.rates());
        assert!((e.rates().inbps - 1000.0).abs() < 0.1);
        assert_eq!(e.rates().outbps, 0.0);
    }

    #[test]
    fn first_period_moves_a_quarter_of_the_way() {
        let t0 = Instant::now();
        let mut e = Estimator::new();
        let mut c = Counters::default();
        e.sample(t0, &c);
        c.conns = 80; // 40/s
        e.sample(t0 + Duration::from_millis(500), &c); // too soon: ignored
        assert_eq!(e.rates().cps, 0.0);
        e.sample(t0 + ESTIMATOR_PERIOD, &c);
        assert!((e.rates().cps - 10.0).abs() < 1e-9);
    }
}
