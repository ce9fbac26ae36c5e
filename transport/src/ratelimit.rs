//! Logins per peer address: every attempt counts as a failure from the moment it starts, so attempts made
//! at the same time (on many streams or connections) cannot outrun the count; one that succeeds takes its
//! own count back. After [`MAX_FAILURES`] within [`WINDOW`], further logins from that address are refused
//! without checking the password until the window passes. A success does not wipe earlier failures, so a
//! valid account cannot be used to reset the count between guesses at another.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; beyond it, those whose window has passed are forgotten.
const MAX_ADDRESSES: usize = 10_000;

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    /// Starts a login attempt from `peer`, counted as a failure until [`succeeded`](Self::succeeded) says
    /// otherwise; false (and nothing counted) when the address has used up its attempts for now.
    pub fn begin(&self, peer: IpAddr) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ADDRESSES {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let entry = map.entry(peer).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        if entry.0 >= MAX_FAILURES {
            return false;
        }
        entry.0 += 1;
        true
    }

    /// The attempt begun from `peer` succeeded: it no longer counts.
    pub fn succeeded(&self, peer: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&peer) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_repeated_failures() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(l.begin(ip));
        }
        assert!(!l.begin(ip), "attempts in flight count before their passwords are checked");
        assert!(l.begin("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn a_success_takes_back_only_its_own_attempt() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            assert!(l.begin(ip));
        }
        assert!(l.begin(ip));
        l.succeeded(ip);
        // Four failures stand: one more attempt, then none.
        assert!(l.begin(ip));
        assert!(!l.begin(ip));
    }
}
