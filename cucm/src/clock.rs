//! The poller's time: the wall clock in production, a faster wall clock against a simulated
//! cluster (`callstate simulate --serve-cucm --speed N`), or virtual time in tests (time moves
//! only when the poller sleeps, so a simulated day is polled as fast as the CPU allows).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A future that completes after a sleep.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the poller reads the time and how it waits.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Waits `d` of this clock's time.
    fn sleep(&self, d: Duration) -> Sleep;
}

/// The wall clock, optionally running `speed` times faster from `origin` (an instant at which
/// it equals the real time): `now = origin + (real_now - origin) * speed`. A pure function of
/// the real time, so two processes given the same origin and speed agree.
#[derive(Debug, Clone)]
pub struct WallClock {
    origin: DateTime<Utc>,
    speed: f64,
}

impl WallClock {
    /// The real time.
    pub fn real() -> WallClock {
        WallClock {
            origin: Utc::now(),
            speed: 1.0,
        }
    }

    /// Time running `speed` times faster than the real time from `origin`.
    pub fn scaled(origin: DateTime<Utc>, speed: f64) -> WallClock {
        WallClock {
            origin,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }
}

impl Clock for WallClock {
    fn now(&self) -> DateTime<Utc> {
        let real = Utc::now();
        if self.speed == 1.0 {
            return real;
        }
        let us = (real - self.origin).num_microseconds().unwrap_or(0) as f64 * self.speed;
        self.origin + chrono::Duration::microseconds(us as i64)
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d.div_f64(self.speed)))
    }
}

/// Virtual time for tests: it stands still until someone sleeps, and a sleep moves it forward
/// at once.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<DateTime<Utc>>,
}

impl VirtualClock {
    /// Virtual time starting at `start`.
    pub fn new(start: DateTime<Utc>) -> VirtualClock {
        VirtualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the time forward to `t` (never back).
    pub fn advance_to(&self, t: DateTime<Utc>) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        if t > *now {
            *now = t;
        }
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep(&self, d: Duration) -> Sleep {
        self.advance(d);
        // let the other tasks (a mock cluster on the same runtime) run
        Box::pin(tokio::task::yield_now())
    }
}
