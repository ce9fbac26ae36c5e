//! Failed logins per peer address: after [`MAX_FAILURES`] failures within [`WINDOW`], further logins from
//! that address are refused without checking the password until the window passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    /// True when this address may try to log in now.
    pub fn allowed(&self, peer: IpAddr) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&peer) {
            Some((count, since)) if since.elapsed() < WINDOW => *count < MAX_FAILURES,
            Some(_) => {
                map.remove(&peer);
                true
            }
            None => true,
        }
    }

    pub fn failed(&self, peer: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(peer).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        // Bound the map: forget the oldest entries if an attacker cycles addresses.
        if map.len() > 10_000 {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
    }

    pub fn succeeded(&self, peer: IpAddr) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(&peer);
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
            assert!(l.allowed(ip));
            l.failed(ip);
        }
        assert!(!l.allowed(ip));
        assert!(l.allowed("127.0.0.2".parse().unwrap()));
        l.succeeded(ip);
        assert!(l.allowed(ip));
    }
}
