//! The supervisor: one thread that stops a script still running at its deadline, and retires
//! a JS thread whose script does not stop. Workers arm their slot before running JavaScript and
//! disarm it after; a stop is only ever sent to the invocation it was armed for (sequence
//! numbers), and the worker learns whether it fired.
//!
//! The supervisor sleeps until the earliest deadline armed, or with none armed until an arm wakes
//! it. An arm wakes it only when its deadline comes before the one it sleeps towards: calls of
//! the same timeout follow one another without a system call, the supervisor wakes about once
//! per timeout under load (to find the next deadline), and an idle proxy has no thread waking up.
//!
//! QuickJS looks for a stop only every 10,000 calls and loop turns, never inside a native call:
//! a loop of a few long native calls runs on for seconds, minutes, after its stop. A slot still
//! armed `STUCK_AFTER` past its stop is retired: the pool starts a replacement thread on a fresh
//! slot, and the retired thread exits when its script ends (at most `max_retired` at once).

use deno_core::v8;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long after its stop a script may run on before its thread is replaced.
pub const STUCK_AFTER: Duration = Duration::from_millis(500);

struct Armed {
    seq: u64,
    deadline: Instant,
    handle: v8::IsolateHandle,
    /// When the script was told to stop.
    stopped_at: Option<Instant>,
    /// Found stuck when no more threads could be replaced (logged once).
    over_cap: bool,
}

#[derive(Default, Clone, Copy, PartialEq, Debug)]
enum Occupant {
    /// A JS thread serving the queue.
    #[default]
    Serving,
    /// A thread replaced while its script did not stop; it exits when the script ends.
    Retired,
    /// No thread: free for a replacement.
    Vacant,
    /// A proxy thread running a function inline (`inline`): its script is stopped at its
    /// deadline like any other, but the thread cannot be replaced.
    Inline,
}

#[derive(Default)]
struct Slot {
    armed: Option<Armed>,
    fired: Option<u64>,
    occupant: Occupant,
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
    /// Threads replaced since start.
    replaced: u64,
    /// Threads that panicked since start.
    crashed: u64,
}

impl State {
    /// Threads retired and still running their script.
    fn retired(&self) -> usize {
        self.slots.iter().filter(|s| s.occupant == Occupant::Retired).count()
    }
}

/// How the JS threads fare (`Supervisor::health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadHealth {
    /// Threads replaced since start because a script ran on past its stop.
    pub replaced: u64,
    /// Of those, threads still running that script.
    pub stuck: usize,
    /// Threads running a script past its stop that could not be replaced (as many were stuck
    /// already as there are threads): their capacity is lost until the script ends.
    pub unreplaced: usize,
    /// Threads that panicked since start. Each was replaced, and left its instances' memory
    /// behind.
    pub crashed: u64,
    /// How many stuck threads may be replaced at once, and how many panics the runtime takes
    /// (`runtime.threads`).
    pub budget: usize,
}

impl ThreadHealth {
    /// Why the process should be replaced, if it should: a JS thread's capacity is lost to a
    /// script that will not stop, or more threads panicked than there are (their abandoned
    /// instances add up).
    pub fn problem(&self) -> Option<String> {
        if self.unreplaced > 0 {
            return Some(format!(
                "{} JS thread(s) run a script that ignored its stop and could not be replaced ({} replaced threads still run one)",
                self.unreplaced, self.stuck
            ));
        }
        if self.crashed > self.budget as u64 {
            return Some(format!(
                "{} JS threads panicked (more than the {} threads), each leaving its instances' memory behind",
                self.crashed, self.budget
            ));
        }
        None
    }
}

/// What `disarm` tells a worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disarmed {
    /// The supervisor stopped this invocation's script.
    pub stopped: bool,
    /// The thread was replaced while the script ran on: it must exit now.
    pub retired: bool,
}

/// Starts a replacement JS thread on the slot given.
pub type Replace = Box<dyn Fn(usize) + Send + Sync>;

pub struct Supervisor {
    state: Mutex<State>,
    wake: Condvar,
    /// How many retired threads may run at once; a stuck thread beyond it is not replaced.
    max_retired: usize,
    replace: OnceLock<Replace>,
}

impl Supervisor {
    /// Starts the supervisor thread for `workers` slots; at most `max_retired` stuck threads are
    /// replaced at once.
    pub fn start(workers: usize, max_retired: usize) -> std::io::Result<Arc<Supervisor>> {
        let supervisor = Arc::new(Supervisor {
            state: Mutex::new(State {
                slots: (0..workers).map(|_| Slot::default()).collect(),
                ..Default::default()
            }),
            wake: Condvar::new(),
            max_retired,
            replace: OnceLock::new(),
        });
        let watcher = supervisor.clone();
        std::thread::Builder::new()
            .name("edgehook-js-supervisor".into())
            .spawn(move || watcher.run())?;
        Ok(supervisor)
    }

    /// Sets what starts a replacement thread (once; the pool, after its threads are made).
    pub fn on_stuck(&self, replace: Replace) {
        let _ = self.replace.set(replace);
    }

    fn run(&self) {
        let mut state = self.state.lock();
        while !state.stopped {
            state.rounds += 1;
            let now = Instant::now();
            let earliest = self.look(&mut state, now);
            state.wake_at = earliest;
            match earliest {
                Some(earliest) => {
                    self.wake.wait_until(&mut state, earliest);
                }
                None => self.wake.wait(&mut state),
            }
        }
    }

    /// Stops scripts past their deadline, retires threads whose script ran on past
    /// `STUCK_AFTER`; returns when to look again.
    fn look(&self, state: &mut MutexGuard<'_, State>, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut soonest = |at: Instant| earliest = Some(earliest.map_or(at, |e: Instant| e.min(at)));
        let mut retired = state.retired();
        let mut stuck = Vec::new();
        for (index, slot) in state.slots.iter_mut().enumerate() {
            if !matches!(slot.occupant, Occupant::Serving | Occupant::Inline) {
                continue;
            }
            let Some(armed) = &mut slot.armed else { continue };
            match armed.stopped_at {
                None if armed.deadline <= now => {
                    armed.handle.terminate_execution();
                    armed.stopped_at = Some(now);
                    slot.fired = Some(armed.seq);
                    soonest(now + STUCK_AFTER);
                }
                None => soonest(armed.deadline),
                Some(at) if at + STUCK_AFTER > now => soonest(at + STUCK_AFTER),
                // A proxy thread is not replaced: it serves on once the script ends.
                Some(_) if slot.occupant == Occupant::Inline => {
                    if !armed.over_cap {
                        armed.over_cap = true;
                        tracing::error!(
                            slot = index,
                            "a script on a proxy thread runs on past its stop; the thread serves again when it ends"
                        );
                    }
                    soonest(now + STUCK_AFTER);
                }
                Some(_) if retired < self.max_retired => {
                    slot.occupant = Occupant::Retired;
                    retired += 1;
                    stuck.push(index);
                }
                // As many threads are stuck as allowed: this one's capacity is lost until its
                // script ends or another stuck thread exits (looked at again then).
                Some(_) => {
                    if !armed.over_cap {
                        armed.over_cap = true;
                        tracing::error!(
                            worker = index,
                            stuck = retired,
                            "a script runs on past its stop; too many JS threads are stuck to replace this one"
                        );
                    }
                    soonest(now + STUCK_AFTER);
                }
            }
        }
        if !stuck.is_empty() {
            // The lock is let go below: an arm meanwhile (the replacement's first, say) finds no
            // supervisor waiting to wake. Look again at once.
            earliest = Some(now);
        }
        for index in stuck {
            let slot = self.vacant_slot(state);
            state.replaced += 1;
            tracing::warn!(
                worker = index,
                replacement = slot,
                "a script runs on past its stop; its JS thread is replaced and exits when the script ends"
            );
            if let Some(replace) = self.replace.get() {
                // The replacement arms its slot from its own thread: not under this lock.
                MutexGuard::unlocked(state, || replace(slot));
            }
        }
        earliest
    }

    /// A slot for a new thread: a vacant one, or a new one.
    fn vacant_slot(&self, state: &mut State) -> usize {
        let index = match state.slots.iter().position(|s| s.occupant == Occupant::Vacant) {
            Some(index) => index,
            None => {
                state.slots.push(Slot::default());
                state.slots.len() - 1
            }
        };
        state.slots[index] = Slot::default();
        index
    }

    /// A new slot for a proxy thread's inline calls (never retired or replaced).
    pub fn inline_slot(&self) -> usize {
        let mut state = self.state.lock();
        state.slots.push(Slot {
            occupant: Occupant::Inline,
            ..Slot::default()
        });
        state.slots.len() - 1
    }

    /// Watches worker `index` until `deadline`; returns the sequence number to disarm with.
    pub fn arm(&self, index: usize, deadline: Instant, handle: v8::IsolateHandle) -> u64 {
        let mut state = self.state.lock();
        state.next_seq += 1;
        let seq = state.next_seq;
        let slot = &mut state.slots[index];
        slot.armed = Some(Armed {
            seq,
            deadline,
            handle,
            stopped_at: None,
            over_cap: false,
        });
        slot.fired = None;
        // Waking the supervisor on every call would cost a context switch each: only a deadline
        // before the one it sleeps towards needs it now.
        if state.wake_at.is_none_or(|at| deadline < at) {
            state.wake_at = Some(deadline);
            self.wake.notify_one();
        }
        seq
    }

    /// Stops watching invocation `seq` of worker `index`.
    pub fn disarm(&self, index: usize, seq: u64) -> Disarmed {
        let mut state = self.state.lock();
        let slot = &mut state.slots[index];
        slot.armed = None;
        let stopped = slot.fired.take() == Some(seq);
        let retired = slot.occupant == Occupant::Retired;
        if retired {
            // Its thread exits now: the slot can take a later replacement.
            slot.occupant = Occupant::Vacant;
        }
        Disarmed { stopped, retired }
    }

    /// Worker `index` panicked and exits: its slot is cleared and a new thread takes it (unless
    /// the thread had been retired already; its replacement serves).
    pub fn crashed(&self, index: usize) {
        let mut state = self.state.lock();
        state.crashed += 1;
        let Some(slot) = state.slots.get_mut(index) else { return };
        let retired = slot.occupant == Occupant::Retired;
        *slot = Slot::default();
        if retired {
            slot.occupant = Occupant::Vacant;
            return;
        }
        drop(state);
        if let Some(replace) = self.replace.get() {
            replace(index);
        }
    }

    /// How the threads fare, read at once.
    pub fn health(&self) -> ThreadHealth {
        let state = self.state.lock();
        let unreplaced = state
            .slots
            .iter()
            .filter(|slot| {
                matches!(slot.occupant, Occupant::Serving | Occupant::Inline)
                    && slot.armed.as_ref().is_some_and(|a| a.over_cap)
            })
            .count();
        ThreadHealth {
            replaced: state.replaced,
            stuck: state.retired(),
            unreplaced,
            crashed: state.crashed,
            budget: self.max_retired,
        }
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
        let supervisor = Supervisor::start(1, 1).expect("supervisor");
        std::thread::sleep(Duration::from_millis(60));
        let idle_rounds = rounds(&supervisor);
        assert!(idle_rounds <= 2, "{idle_rounds} rounds in 60 ms with nothing armed");

        let deadline = Instant::now() + Duration::from_millis(20);
        let seq = supervisor.arm(0, deadline, runtime.v8_isolate().thread_safe_handle());
        assert!(fired(&supervisor, 0, seq), "the deadline passed unnoticed");
        assert!(supervisor.disarm(0, seq).stopped);
        supervisor.stop();
    }

    #[test]
    fn calls_in_a_row_do_not_wake_the_supervisor() {
        let mut runtime = isolate();
        let supervisor = Supervisor::start(2, 2).expect("supervisor");
        let started = Instant::now();
        let mut calls = 0;
        while started.elapsed() < Duration::from_millis(150) {
            for index in 0..2 {
                let deadline = Instant::now() + Duration::from_secs(5);
                let seq = supervisor.arm(index, deadline, runtime.v8_isolate().thread_safe_handle());
                std::thread::sleep(Duration::from_micros(50));
                assert!(!supervisor.disarm(index, seq).stopped);
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
        let supervisor = Supervisor::start(2, 2).expect("supervisor");
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
        assert!(supervisor.disarm(1, early).stopped);
        assert!(!supervisor.disarm(0, late).stopped, "the later deadline has not come");
        supervisor.stop();
    }

    /// A supervisor whose replacements run `replace` (given the supervisor and the new slot) and
    /// send what it returns.
    fn reporting<T: Send + 'static>(
        workers: usize,
        max_retired: usize,
        replace: impl Fn(&Supervisor, usize) -> T + Send + Sync + 'static,
    ) -> (Arc<Supervisor>, std::sync::mpsc::Receiver<T>) {
        let supervisor = Supervisor::start(workers, max_retired).expect("supervisor");
        let (sender, reports) = std::sync::mpsc::channel();
        let weak = Arc::downgrade(&supervisor);
        supervisor.on_stuck(Box::new(move |slot| {
            if let Some(supervisor) = weak.upgrade() {
                let _ = sender.send(replace(&supervisor, slot));
            }
        }));
        (supervisor, reports)
    }

    #[test]
    fn a_thread_whose_script_runs_on_past_its_stop_is_replaced_within_the_cap() {
        let mut runtime = isolate();
        let handle = runtime.v8_isolate().thread_safe_handle();
        let (supervisor, replaced) = reporting(2, 1, |_, slot| slot);
        // Nothing disarms these in time: as if their scripts ignored the stop.
        let deadline = Instant::now() + Duration::from_millis(20);
        let first = supervisor.arm(0, deadline, handle.clone());
        let second = supervisor.arm(1, deadline, handle);
        let slot = replaced.recv_timeout(Duration::from_secs(5)).expect("a replacement");
        assert_eq!(slot, 2, "a fresh slot for the first stuck thread's replacement");
        assert!(
            replaced.recv_timeout(STUCK_AFTER * 3).is_err(),
            "one stuck thread at a time may be replaced"
        );
        assert_eq!((supervisor.health().stuck, supervisor.health().replaced), (1, 1));
        // The first script ends: its thread is told to exit, its slot is free again, and the
        // second stuck thread is replaced on it.
        let retired = Disarmed {
            stopped: true,
            retired: true,
        };
        assert_eq!(supervisor.disarm(0, first), retired);
        let next = replaced
            .recv_timeout(Duration::from_secs(5))
            .expect("the second replacement");
        assert_eq!(next, 0, "the vacant slot is reused");
        assert_eq!(supervisor.disarm(1, second), retired);
        assert_eq!((supervisor.health().stuck, supervisor.health().replaced), (0, 2));
        supervisor.stop();
    }

    #[test]
    fn a_deadline_armed_while_a_replacement_starts_is_kept() {
        let mut runtime = isolate();
        let handle = runtime.v8_isolate().thread_safe_handle();
        let replacement_handle = handle.clone();
        // The replacement arms its slot at once, while the supervisor has let go of its lock.
        let (supervisor, armed) = reporting(1, 1, move |supervisor, slot| {
            let deadline = Instant::now() + Duration::from_millis(30);
            (slot, supervisor.arm(slot, deadline, replacement_handle.clone()))
        });
        supervisor.arm(0, Instant::now() + Duration::from_millis(10), handle);
        let (slot, seq) = armed.recv_timeout(Duration::from_secs(5)).expect("a replacement");
        assert!(
            fired(&supervisor, slot, seq),
            "the replacement's deadline passed unnoticed"
        );
        supervisor.stop();
    }
}
