//! Which version of an alias serves a viewer. An alias with a weighted second version splits
//! traffic by that weight, sticky per viewer: the viewer's key (client address and User-Agent)
//! is hashed with the function and alias names into a point in [0, 1), and viewers below the
//! weight get the second version. The same viewer lands on the same side for as long as the
//! weight does not move past its point, so a growing rollout only ever moves viewers forward.

use super::store::Alias;

/// The stickiness key of a viewer.
pub fn viewer_key(client_ip: &str, user_agent: &str) -> String {
    format!("{client_ip}\u{0}{user_agent}")
}

/// FNV-1a over the parts, then a finalizer so that near keys spread out.
fn point(parts: &[&str]) -> f64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x100000001b3);
        }
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51afd7ed558ccd);
    hash ^= hash >> 33;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// The version of `alias` (of `function`, named `alias_name`) that serves the viewer `key`.
pub fn pick(function: &str, alias_name: &str, alias: &Alias, key: &str) -> u32 {
    match alias.additional_version {
        Some(extra) if point(&[function, alias_name, key]) < extra.weight => extra.version,
        _ => alias.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::store::Weighted;

    fn alias(weight: f64) -> Alias {
        Alias {
            version: 1,
            additional_version: Some(Weighted { version: 2, weight }),
        }
    }

    fn share_of_second(weight: f64) -> f64 {
        let viewers = 20_000;
        let second = (0..viewers)
            .filter(|i| {
                pick(
                    "f",
                    "live",
                    &alias(weight),
                    &viewer_key(&format!("10.0.{}.{}", i / 256, i % 256), "ua"),
                ) == 2
            })
            .count();
        second as f64 / viewers as f64
    }

    #[test]
    fn the_split_follows_the_weight() {
        for weight in [0.0, 0.1, 0.25, 0.5, 0.9, 1.0] {
            let share = share_of_second(weight);
            assert!((share - weight).abs() < 0.015, "weight {weight}: {share}");
        }
    }

    #[test]
    fn viewers_stick_and_only_move_forward_as_the_weight_grows() {
        let keys: Vec<String> = (0..1000)
            .map(|i| viewer_key(&format!("192.0.2.{}", i % 256), &format!("agent {i}")))
            .collect();
        let at = |weight: f64| -> Vec<u32> { keys.iter().map(|k| pick("f", "live", &alias(weight), k)).collect() };
        assert_eq!(at(0.3), at(0.3), "the same viewer gets the same version");
        let (low, high) = (at(0.3), at(0.6));
        assert!(
            low.iter().zip(&high).all(|(l, h)| *l == 1 || *h == 2),
            "nobody on version 2 goes back at a higher weight"
        );
        let plain = Alias {
            version: 7,
            additional_version: None,
        };
        assert!(keys.iter().all(|k| pick("f", "live", &plain, k) == 7));
    }
}
