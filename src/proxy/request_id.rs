//! Request ids: 32 hex characters, unique within a process (a counter) and, with a random
//! per-process prefix, across restarts and instances.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn prefix() -> u64 {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    *PREFIX.get_or_init(rand::random)
}

/// Scrambles the counter (a bijection) so consecutive ids do not look sequential.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

pub fn next() -> String {
    // Start at 1: mix(0) is 0.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    // Hex by hand: `format!` costs several times more, on every request.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for word in [prefix(), mix(n)] {
        for shift in (0..16).rev() {
            id.push(HEX[((word >> (shift * 4)) & 0xf) as usize] as char);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_fixed_length() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::next()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        let id = super::next();
        assert_eq!(&id[..16], format!("{:016x}", super::prefix()), "the prefix comes first");
        let n = u64::from_str_radix(&id[16..], 16).unwrap();
        assert!((1..=super::COUNTER.load(std::sync::atomic::Ordering::Relaxed)).any(|c| super::mix(c) == n));
    }
}
