//! Logins per peer address: every attempt counts as a failure from the moment it starts, so attempts made
//! at the same time (on many streams or connections) cannot outrun the count; one that succeeds takes its
//! own count back. After [`MAX_FAILURES`] within [`WINDOW`], further logins from that address are refused
//! without checking the password until the window passes. A success does not wipe earlier failures, so a
//! valid account cannot be used to reset the count between guesses at another. IPv6 peers are counted by
//! their /64 network (one host usually holds a whole /64 and could otherwise guess from each of its
//! addresses in turn); IPv4 peers, also when mapped into IPv6, by their address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Past this many addresses remembered, those whose window has passed are forgotten (at most once a second:
/// addresses still in their window are kept, so the sweep would otherwise run at every attempt).
const MAX_ADDRESSES: usize = 10_000;
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    /// Attempts counted per address, and when its window began.
    by_address: HashMap<IpAddr, (u32, Instant)>,
    last_sweep: Option<Instant>,
}

impl LoginLimiter {
    /// Starts a login attempt from `peer`, counted as a failure until [`succeeded`](Self::succeeded) says
    /// otherwise; false (and nothing counted) when the address has used up its attempts for now.
    pub fn begin(&self, peer: IpAddr) -> bool {
        let peer = counted_as(peer);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Failures { by_address: map, last_sweep } = &mut *failures;
        if map.len() >= MAX_ADDRESSES && last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_INTERVAL) {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
            *last_sweep = Some(Instant::now());
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
        let peer = counted_as(peer);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = failures.by_address.get_mut(&peer) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }
}

/// The address whose count a login from `peer` goes to: an IPv6 peer's /64 network, an IPv4 address as is.
fn counted_as(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
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

    #[test]
    fn an_ipv6_network_counts_as_one_peer() {
        let l = LoginLimiter::default();
        for host in 0..MAX_FAILURES {
            assert!(l.begin(format!("2001:db8:1:2::{}", host + 1).parse().unwrap()));
        }
        // Another address of the same /64 is refused; another /64, and an IPv4 peer mapped or not, are not.
        assert!(!l.begin("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert!(l.begin("2001:db8:1:3::1".parse().unwrap()));
        for _ in 0..MAX_FAILURES {
            assert!(l.begin("::ffff:192.0.2.7".parse().unwrap()));
        }
        assert!(!l.begin("192.0.2.7".parse().unwrap()), "a mapped IPv4 address counts as that address");
        assert!(l.begin("192.0.2.8".parse().unwrap()));
    }
}
