//! The random name parts the reconciler draws from the seed, and the order excess workers are deleted in.
//!
//! The names themselves follow KubeRay's rules in `wasmray_api::names`, which the host's builders share.

use std::collections::BTreeSet;

/// Characters of generated suffixes: Kubernetes' `generateName` alphabet (no vowels, so no words).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Draws 5-character suffixes from the snapshot's seed, never one that is taken.
///
/// `taken` holds whole names (existing Pods, earlier draws); a suffix is rejected when any taken
/// name ends with `-<suffix>`, which covers every prefix at once.
pub struct Suffixes {
    state: u64,
    taken: BTreeSet<String>,
}

impl Suffixes {
    /// A generator seeded from the snapshot, aware of the names that exist.
    pub fn new(seed: u64, existing: impl IntoIterator<Item = String>) -> Self {
        let taken = existing
            .into_iter()
            .filter_map(|n| n.rsplit('-').next().map(str::to_owned))
            .collect();
        Suffixes { state: seed, taken }
    }

    /// The next free suffix.
    pub fn next(&mut self) -> String {
        loop {
            let mut bits = self.next_u64();
            let suffix: String = (0..5)
                .map(|_| {
                    let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize];
                    bits /= ALPHABET.len() as u64;
                    c as char
                })
                .collect();
            if self.taken.insert(suffix.clone()) {
                return suffix;
            }
        }
    }

    /// splitmix64: tiny, and good enough to spread suffixes.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A stable 64-bit hash (FNV-1a) of a name: the order excess workers are deleted in.
///
/// It depends on the Pod alone, not on the seed, so two reconciles that both see the same surplus
/// (the second before the cache shows the first one's deletions) pick the same Pods and never
/// delete more than the surplus.
pub fn stable_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_deterministic_and_avoid_existing_names() {
        let mut a = Suffixes::new(7, []);
        let first = a.next();
        let mut b = Suffixes::new(7, [format!("rc-head-{first}")]);
        assert_ne!(b.next(), first);
        assert_eq!(Suffixes::new(7, []).next(), first);
        assert!(first.len() == 5 && first.bytes().all(|c| ALPHABET.contains(&c)));
    }
}
