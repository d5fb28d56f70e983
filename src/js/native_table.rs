//! The engine's table of native functions, one per OS thread, and how much of it a thread has
//! spent.
//!
//! QuickJS calls a native function through an index in this table, passed as a 16-bit `magic`:
//! a thread has 32,768 entries for its whole life. Building an instance takes about 256 of them
//! (about 530 with the web platform), and dropping the instance frees none. Past the end, calls
//! reach the wrong native function and a module's evaluation never settles. Measured on one
//! thread, each instance a trivial function kept alive: the 128th instance without the web
//! platform fails to load, and the 62nd with it.
//!
//! So every build on a thread is counted here first, at a little more than measured. A JS
//! thread short of room for two more builds hands its place to a fresh thread (`Worker`); a
//! proxy thread, which cannot be replaced, spends the second half of its table only on
//! functions it is asked for often, and once out of room builds no more instances: its calls
//! go to the JS threads.
//! V8 has no such table.

use std::cell::Cell;

/// Entries a thread has, or none to count under V8.
const CAPACITY: u32 = if cfg!(feature = "quickjs") { 32_768 } else { u32::MAX };

/// Entries counted per build (and per engine snapshot made), without and with the web platform.
const COST: [u32; 2] = [270, 560];

thread_local! {
    static SPENT: Cell<u32> = const { Cell::new(0) };
}

fn cost(web: bool) -> u32 {
    COST[usize::from(web)]
}

/// Counts a build (or snapshot) about to be made on this thread.
pub fn spend(web: bool) {
    SPENT.with(|spent| spent.set(spent.get().saturating_add(cost(web))));
}

/// Whether this thread has room for `builds` more builds of any kind.
pub fn room_for(builds: u32) -> bool {
    let needed = cost(true).saturating_mul(builds);
    SPENT.with(|spent| spent.get().saturating_add(needed) <= CAPACITY)
}

/// Whether this thread has spent half its table or more.
pub fn past_half() -> bool {
    SPENT.with(|spent| spent.get() > CAPACITY / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_has_room_for_a_bounded_number_of_builds() {
        if !cfg!(feature = "quickjs") {
            return;
        }
        std::thread::spawn(|| {
            assert!(room_for(2));
            let mut builds = 0;
            while room_for(1) {
                spend(false);
                builds += 1;
            }
            // At most what was measured to work, and not far below it.
            assert!((100..128).contains(&builds), "{builds} builds");
        })
        .join()
        .expect("the counting thread");
    }
}
