//! At most one line per period for a warning a client can cause at will (issue 17: no
//! client-controlled input may produce unbounded WARN lines). The line that gets through
//! says how many were held back since the previous one. One instance per call site and
//! thread (a `thread_local!`), so a worker never shares it; `Cell`s only.

use std::cell::Cell;
use std::time::Duration;

use monoio::time::Instant;

/// One call site's rate limit on one thread.
pub struct Throttle {
    period: Duration,
    last: Cell<Option<Instant>>,
    suppressed: Cell<u64>,
}

impl Throttle {
    pub const fn new(period: Duration) -> Self {
        Throttle {
            period,
            last: Cell::new(None),
            suppressed: Cell::new(0),
        }
    }

    /// `Some(n)`: log the line now (`n` lines were held back since the last one); `None`:
    /// hold it back.
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .get()
            .is_some_and(|t| now.duration_since(t) < self.period)
        {
            self.suppressed.set(self.suppressed.get() + 1);
            return None;
        }
        self.last.set(Some(now));
        Some(self.suppressed.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_then_the_count_of_held_lines() {
        let t = Throttle::new(Duration::from_millis(50));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.allow(), Some(2));
        assert_eq!(t.allow(), None);
    }
}
