//! `/healthz`: healthy while the probes are attached and the collector
//! ticks.
use std::time::{Duration, Instant};

/// What `/healthz` knows.
#[derive(Debug)]
pub struct Health {
    /// The collector's interval.
    interval: Duration,
    /// When the probes reported `started`.
    started: Option<Instant>,
    /// The collector's last tick.
    last_tick: Option<Instant>,
    /// Set when the collector ended (an error, or the way out).
    ended: Option<String>,
}

impl Health {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            started: None,
            last_tick: None,
            ended: None,
        }
    }

    pub fn on_started(&mut self, now: Instant) {
        self.started = Some(now);
    }

    pub fn on_tick(&mut self, now: Instant) {
        self.last_tick = Some(now);
    }

    pub fn on_end(&mut self, why: impl Into<String>) {
        self.ended = Some(why.into());
    }

    /// How long without a tick is too long: three intervals, at least 5 s
    /// (a scan under load may take a while).
    fn stale_after(&self) -> Duration {
        (self.interval * 3).max(Duration::from_secs(5))
    }

    /// `Ok(what is fine)` or `Err(what is wrong)`, as of now.
    pub fn check(&self) -> Result<String, String> {
        self.check_at(Instant::now())
    }

    pub fn check_at(&self, now: Instant) -> Result<String, String> {
        if let Some(why) = &self.ended {
            return Err(format!("the collector has stopped: {why}"));
        }
        if self.started.is_none() {
            return Err("starting: the eBPF probes are not attached yet".into());
        }
        let Some(t) = self.last_tick else {
            return Err("starting: the collector has not ticked yet".into());
        };
        let age = now.saturating_duration_since(t);
        if age > self.stale_after() {
            return Err(format!(
                "the collector's last tick was {:.1} s ago (interval {:.1} s)",
                age.as_secs_f64(),
                self.interval.as_secs_f64()
            ));
        }
        Ok(format!(
            "probes attached, last tick {:.1} s ago",
            age.as_secs_f64()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_while_started_and_ticking() {
        let t0 = Instant::now();
        let mut h = Health::new(Duration::from_secs(1));
        assert!(h.check_at(t0).unwrap_err().contains("not attached"));
        h.on_started(t0);
        assert!(h.check_at(t0).unwrap_err().contains("not ticked"));
        h.on_tick(t0);
        assert!(h.check_at(t0 + Duration::from_secs(4)).is_ok());
        let stale = h.check_at(t0 + Duration::from_secs(6)).unwrap_err();
        assert!(stale.contains("last tick was 6.0 s ago"), "{stale}");
        h.on_tick(t0 + Duration::from_secs(6));
        assert!(h.check_at(t0 + Duration::from_secs(7)).is_ok());
        h.on_end("SIGTERM");
        assert!(h.check_at(t0 + Duration::from_secs(7)).is_err());
    }
}
