//! How long a failed job waits before its next attempt.

use std::time::Duration;

use rand::Rng;

/// Truncated exponential backoff with jitter: the wait after failed attempt
/// `n` (1 for the first) is `min(cap, base * 2^(n-1))`, of which the first
/// half is fixed and the second half random ("equal jitter", as the HTTP
/// client in calmesh-provider does it), so jobs that failed together do not
/// retry together and none retries at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub base: Duration,
    /// The longest wait (before jitter).
    pub cap: Duration,
}

impl Default for Backoff {
    /// 5 s, doubling up to 1 h.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The wait before jitter after failed attempt `attempt` (1 for the first
    /// failure; 0 is treated as 1).
    pub fn nominal(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }

    /// The bounds the jittered wait after `attempt` falls in: half the
    /// nominal wait to all of it.
    pub fn bounds(&self, attempt: u32) -> (Duration, Duration) {
        let nominal = self.nominal(attempt);
        (nominal / 2, nominal)
    }

    /// The jittered wait after failed attempt `attempt`.
    pub fn wait(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let (low, high) = self.bounds(attempt);
        let spread = u64::try_from((high - low).as_millis()).unwrap_or(u64::MAX);
        low + Duration::from_millis(rng.random_range(0..=spread))
    }

    /// The wait before a retry when the provider asked for `retry_after`:
    /// the longer of the two, so a provider's request is honoured and a
    /// tiny `Retry-After` does not defeat the backoff.
    pub fn wait_with(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let wait = self.wait(attempt, rng);
        retry_after.map_or(wait, |asked| asked.max(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_up_to_cap() {
        let backoff = Backoff::default();
        let secs: Vec<u64> = (1..=12).map(|n| backoff.nominal(n).as_secs()).collect();
        assert_eq!(
            secs,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff.nominal(0), Duration::from_secs(5));
        assert_eq!(backoff.nominal(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn jittered_waits_stay_in_bounds_and_vary() {
        let backoff = Backoff::default();
        let mut rng = rand::rng();
        for attempt in 1..=10 {
            let (low, high) = backoff.bounds(attempt);
            let waits: Vec<Duration> = (0..200).map(|_| backoff.wait(attempt, &mut rng)).collect();
            assert!(waits.iter().all(|w| (low..=high).contains(w)), "{attempt}");
            let distinct: std::collections::HashSet<_> = waits.iter().collect();
            assert!(distinct.len() > 10, "attempt {attempt}: jitter varies");
        }
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let backoff = Backoff::default();
        let mut rng = rand::rng();
        let long = Duration::from_secs(120);
        assert_eq!(backoff.wait_with(1, Some(long), &mut rng), long);
        let short = Duration::from_secs(1);
        let wait = backoff.wait_with(3, Some(short), &mut rng);
        assert!(wait >= Duration::from_secs(10), "{wait:?}");
    }
}
