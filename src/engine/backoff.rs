//! Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
//! and Jitter"): the wait is uniform in `[0, min(max, base · 2^(n-1))]`.
//!
//! Full jitter spreads the retries of many files (or many devices behind one uplink)
//! that failed together, instead of having them return in lockstep. The failure count
//! lives in the journal, so the backoff survives a restart.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The ceiling for the `failures`-th failure in a row (1-based).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max)
    }

    /// The wait after the `failures`-th failure in a row, never less than what the
    /// server asked for with `Retry-After`.
    pub fn delay(
        &self,
        failures: u32,
        server_asked: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let jittered = self.ceiling(failures).mul_f64(rng.f64());
        match server_asked {
            Some(after) => jittered.max(after.min(self.max)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(300),
    };

    #[test]
    fn ceiling_doubles_then_caps() {
        assert_eq!(B.ceiling(1), Duration::from_secs(1));
        assert_eq!(B.ceiling(2), Duration::from_secs(2));
        assert_eq!(B.ceiling(9), Duration::from_secs(256));
        assert_eq!(B.ceiling(10), Duration::from_secs(300));
        assert_eq!(B.ceiling(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn delay_is_within_the_ceiling_and_spread() {
        let mut rng = fastrand::Rng::with_seed(7);
        let delays: Vec<Duration> = (0..1000).map(|_| B.delay(4, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        let mean = delays.iter().sum::<Duration>() / 1000;
        assert!(
            mean > Duration::from_secs(3) && mean < Duration::from_secs(5),
            "{mean:?}"
        );
    }

    #[test]
    fn retry_after_is_a_floor_capped_by_max() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            assert!(B.delay(1, Some(Duration::from_secs(30)), &mut rng) >= Duration::from_secs(30));
        }
        assert_eq!(
            B.delay(1, Some(Duration::from_secs(86_400)), &mut rng),
            Duration::from_secs(300)
        );
    }
}
