//! The supervisor: one thread that stops a script still running at its deadline. Workers arm
//! their slot before running JavaScript and disarm it after; a stop is only ever sent to the
//! invocation it was armed for (sequence numbers), and the worker learns whether it fired.
//! While anything is armed the supervisor checks on a short tick instead of being woken on every
//! arm, so an invocation costs no system call here; deadlines are met within one tick. With
//! nothing armed it sleeps until an arm wakes it: an idle proxy has no thread waking up.

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
    /// The supervisor sleeps without a deadline (nothing was armed); the next arm wakes it.
    idle: bool,
    /// Times the supervisor looked at the slots (for tests).
    rounds: u64,
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
            state.rounds += 1;
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
            match earliest {
                Some(earliest) => {
                    self.wake.wait_until(&mut state, earliest.min(now + TICK));
                }
                None => {
                    state.idle = true;
                    self.wake.wait(&mut state);
                    state.idle = false;
                }
            }
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
        // A ticking supervisor sees the new deadline at its next tick (deadlines are far longer
        // than a tick): waking its thread on every call would cost a context switch each. Only
        // one asleep for want of work is woken, at most once per tick of traffic.
        if state.idle {
            state.idle = false;
            self.wake.notify_one();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_idle_supervisor_sleeps_until_an_arm_wakes_it() {
        crate::js::engine::init();
        let mut runtime = deno_core::JsRuntime::new(Default::default());
        let supervisor = Supervisor::start(1).expect("supervisor");
        std::thread::sleep(Duration::from_millis(60));
        let idle_rounds = supervisor.state.lock().rounds;
        assert!(idle_rounds <= 2, "{idle_rounds} rounds in 60 ms with nothing armed");

        let deadline = Instant::now() + Duration::from_millis(20);
        let seq = supervisor.arm(0, deadline, runtime.v8_isolate().thread_safe_handle());
        let waited = Instant::now();
        while supervisor.state.lock().slots[0].fired != Some(seq) {
            assert!(
                waited.elapsed() < Duration::from_secs(5),
                "the deadline passed unnoticed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(supervisor.disarm(0, seq));
        supervisor.stop();
    }
}
