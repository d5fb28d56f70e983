//! The supervisor: one thread that stops a script still running at its deadline. Workers arm
//! their slot before running JavaScript and disarm it after; a stop is only ever sent to the
//! invocation it was armed for (sequence numbers), and the worker learns whether it fired.
//! The supervisor checks on a short tick instead of being woken on every arm, so an invocation
//! costs no system call here; deadlines are met within one tick.

use deno_core::v8;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::Instant;

struct Armed {
    seq: u64,
    deadline: Instant,
    handle: v8::IsolateHandle,
}

#[derive(Default)]
struct Slot {
    armed: Option<Armed>,
    fired: Option<u64>,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    next_seq: u64,
    stopped: bool,
}

/// How often the supervisor looks at the armed deadlines.
const TICK: std::time::Duration = std::time::Duration::from_millis(5);

pub struct Supervisor {
    state: Mutex<State>,
    wake: Condvar,
}

impl Supervisor {
    /// Starts the supervisor thread for `workers` slots.
    pub fn start(workers: usize) -> std::io::Result<Arc<Supervisor>> {
        let supervisor = Arc::new(Supervisor {
            state: Mutex::new(State {
                slots: (0..workers).map(|_| Slot::default()).collect(),
                ..Default::default()
            }),
            wake: Condvar::new(),
        });
        let watcher = supervisor.clone();
        std::thread::Builder::new()
            .name("edgehook-js-supervisor".into())
            .spawn(move || watcher.run())?;
        Ok(supervisor)
    }

    fn run(&self) {
        let mut state = self.state.lock();
        while !state.stopped {
            let now = Instant::now();
            let mut earliest: Option<Instant> = None;
            for slot in state.slots.iter_mut() {
                let Some(armed) = &slot.armed else { continue };
                if armed.deadline <= now {
                    armed.handle.terminate_execution();
                    slot.fired = Some(armed.seq);
                    slot.armed = None;
                } else {
                    earliest = Some(earliest.map_or(armed.deadline, |e: Instant| e.min(armed.deadline)));
                }
            }
            let next_check = now + TICK;
            self.wake
                .wait_until(&mut state, earliest.map_or(next_check, |e| e.min(next_check)));
        }
    }

    /// Watches worker `index` until `deadline`; returns the sequence number to disarm with.
    pub fn arm(&self, index: usize, deadline: Instant, handle: v8::IsolateHandle) -> u64 {
        let mut state = self.state.lock();
        state.next_seq += 1;
        let seq = state.next_seq;
        state.slots[index] = Slot {
            armed: Some(Armed { seq, deadline, handle }),
            fired: None,
        };
        // No wake-up: the supervisor's next tick sees the new deadline (deadlines are far longer
        // than a tick), and waking its thread on every call would cost a context switch each.
        seq
    }

    /// Stops watching; true when the supervisor stopped the script of invocation `seq`.
    pub fn disarm(&self, index: usize, seq: u64) -> bool {
        let mut state = self.state.lock();
        let slot = &mut state.slots[index];
        slot.armed = None;
        slot.fired.take() == Some(seq)
    }

    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.wake.notify_one();
    }
}
