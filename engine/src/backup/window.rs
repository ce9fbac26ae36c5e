//! A bound on the entries the walker has listed but the assembler has not yet put into a tree page.
//!
//! Entries wait in the assembler until everything before them in their folder is done (a file being read,
//! a sub-folder being walked). Without a bound, one slow file early in a folder of a million unchanged
//! files would queue the million entries behind it. The walker takes a [`Ticket`] per entry and blocks
//! while the window is full; the ticket travels with the entry and is dropped when the entry leaves the
//! queue (or is discarded), which frees its place.
//!
//! This cannot deadlock: every waiting entry completes without the walker's help (files are already with
//! the readers) except the sub-folders the walker is inside of, one per level of nesting. Those are allowed
//! on top of the limit (the walker says how deep it is), so the limit always leaves room for entries that
//! complete by themselves. Once the backup stops, the assembler no longer frees places, so
//! a waiting walker gives up instead.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Entries in flight between walker and assembler.
pub const DEFAULT_WINDOW: usize = 64 * 1024;
/// How often a blocked walker checks whether the backup stopped.
const STOP_POLL: Duration = Duration::from_millis(100);

pub struct Window {
    state: Mutex<State>,
    freed: Condvar,
    limit: usize,
}

struct State {
    held: usize,
    waiting: bool,
}

impl Window {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State { held: 0, waiting: false }),
            freed: Condvar::new(),
            limit: limit.max(1),
        })
    }

    /// Takes a place for an entry `depth` folders below the source root, blocking while the limit plus
    /// `depth` places are taken; `None` once `stopped` says the backup is over (a stopped assembler no longer
    /// frees places, so the wait looks at `stopped` every [`STOP_POLL`]).
    pub fn enter(self: &Arc<Self>, depth: usize, stopped: impl Fn() -> bool) -> Option<Ticket> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while self.full(&state, depth) {
            if stopped() {
                return None;
            }
            state.waiting = true;
            state = self.freed.wait_timeout(state, STOP_POLL).unwrap_or_else(|p| p.into_inner()).0;
        }
        Some(self.take(&mut state))
    }

    /// Takes a place for an entry if one is free now, without waiting.
    pub fn try_enter(self: &Arc<Self>, depth: usize) -> Option<Ticket> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (!self.full(&state, depth)).then(|| self.take(&mut state))
    }

    /// Whether an entry `depth` folders down must wait: the limit plus `depth` places are taken.
    fn full(&self, state: &State, depth: usize) -> bool {
        state.held >= self.limit.saturating_add(depth)
    }

    fn take(self: &Arc<Self>, state: &mut State) -> Ticket {
        state.held += 1;
        Ticket { window: self.clone() }
    }

    /// Places taken now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).held
    }
}

/// One place in a [`Window`], given back on drop.
pub struct Ticket {
    window: Arc<Window>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.window.state.lock().unwrap_or_else(|p| p.into_inner());
        state.held -= 1;
        // Waking costs a system call, so only when the walker waits (almost never).
        if state.waiting {
            state.waiting = false;
            self.window.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn a_full_window_blocks_until_a_ticket_is_dropped() {
        let window = Window::new(2);
        let a = window.enter(0, || false).unwrap();
        let _b = window.enter(0, || false).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let w = window.clone();
        let waiter = std::thread::spawn(move || {
            let t = w.enter(0, || false).unwrap();
            tx.send(()).unwrap();
            drop(t);
        });
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "third entry must wait");
        drop(a);
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("freed place lets the walker go on");
        waiter.join().unwrap();
        assert_eq!(window.held(), 1);
    }

    #[test]
    fn a_blocked_walker_gives_up_when_the_backup_stops() {
        let window = Window::new(1);
        let _held = window.enter(0, || false).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (window.clone(), stop.clone());
        let waiter = std::thread::spawn(move || w.enter(0, || s.load(Ordering::Relaxed)).is_none());
        std::thread::sleep(Duration::from_millis(150));
        stop.store(true, Ordering::Relaxed);
        assert!(waiter.join().unwrap(), "no place is given after the stop");
    }
}
