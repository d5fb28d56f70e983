//! The supervisor: one thread that stops a script still running at its deadline. Workers arm
//! their slot before running JavaScript and disarm it after; a stop is only ever sent to the
//! invocation it was armed for (sequence numbers), and the worker learns whether it fired.
//! The supervisor sleeps until the earliest deadline armed, or with none armed until an arm wakes
//! it. An arm wakes it only when its deadline comes before the one it sleeps towards: calls of
//! the same timeout follow one another without a system call, the supervisor wakes about once
//! per timeout under load (to find the next deadline), and an idle proxy has no thread waking up.

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
    /// When the supervisor will next look at the slots; `None`: not until an arm wakes it.
    wake_at: Option<Instant>,
    /// Times the supervisor looked at the slots (for tests).
    rounds: u64,
}

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
            state.wake_at = earliest;
            match earliest {
                Some(earliest) => {
                    self.wake.wait_until(&mut state, earliest);
                }
                None => self.wake.wait(&mut state),
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
        // Waking the supervisor on every call would cost a context switch each: only a deadline
        // before the one it sleeps towards needs it now.
        if state.wake_at.is_none_or(|at| deadline < at) {
            state.wake_at = Some(deadline);
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

    fn rounds(supervisor: &Supervisor) -> u64 {
        supervisor.state.lock().rounds
    }

    /// Waits (up to 5 s) for the supervisor to stop invocation `seq` of slot `index`.
    fn fired(supervisor: &Supervisor, index: usize, seq: u64) -> bool {
        let waited = Instant::now();
        while supervisor.state.lock().slots[index].fired != Some(seq) {
            if waited.elapsed() > Duration::from_secs(5) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn isolate() -> deno_core::JsRuntime {
        crate::js::engine::init();
        deno_core::JsRuntime::new(Default::default())
    }

    #[test]
    fn an_idle_supervisor_sleeps_until_an_arm_wakes_it() {
        let mut runtime = isolate();
        let supervisor = Supervisor::start(1).expect("supervisor");
        std::thread::sleep(Duration::from_millis(60));
        let idle_rounds = rounds(&supervisor);
        assert!(idle_rounds <= 2, "{idle_rounds} rounds in 60 ms with nothing armed");

        let deadline = Instant::now() + Duration::from_millis(20);
        let seq = supervisor.arm(0, deadline, runtime.v8_isolate().thread_safe_handle());
        assert!(fired(&supervisor, 0, seq), "the deadline passed unnoticed");
        assert!(supervisor.disarm(0, seq));
        supervisor.stop();
    }

    #[test]
    fn calls_in_a_row_do_not_wake_the_supervisor() {
        let mut runtime = isolate();
        let supervisor = Supervisor::start(2).expect("supervisor");
        let started = Instant::now();
        let mut calls = 0;
        while started.elapsed() < Duration::from_millis(150) {
            for index in 0..2 {
                let deadline = Instant::now() + Duration::from_secs(5);
                let seq = supervisor.arm(index, deadline, runtime.v8_isolate().thread_safe_handle());
                std::thread::sleep(Duration::from_micros(50));
                assert!(!supervisor.disarm(index, seq));
                calls += 1;
            }
        }
        let looked = rounds(&supervisor);
        assert!(looked <= 3, "{looked} rounds over {calls} calls of one timeout");
        supervisor.stop();
    }

    #[test]
    fn an_earlier_deadline_wakes_a_supervisor_waiting_for_a_later_one() {
        let mut runtime = isolate();
        let supervisor = Supervisor::start(2).expect("supervisor");
        let late = supervisor.arm(
            0,
            Instant::now() + Duration::from_secs(30),
            runtime.v8_isolate().thread_safe_handle(),
        );
        std::thread::sleep(Duration::from_millis(20));
        let early = supervisor.arm(
            1,
            Instant::now() + Duration::from_millis(20),
            runtime.v8_isolate().thread_safe_handle(),
        );
        assert!(fired(&supervisor, 1, early), "the earlier deadline passed unnoticed");
        assert!(supervisor.disarm(1, early));
        assert!(!supervisor.disarm(0, late), "the later deadline has not come");
        supervisor.stop();
    }
}
