//! Names the host's builders give children, and the random name parts the reconciler draws from the seed.

use std::collections::BTreeSet;

/// Characters of generated suffixes: Kubernetes' `generateName` alphabet (no vowels, so no words).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Longest Pod-name prefix before the suffix, as KubeRay clips it.
const MAX_PREFIX: usize = 50;

/// `<cluster>-head-` (cluster part clipped to 50, lowercased).
pub fn head_pod_prefix(cluster: &str) -> String {
    format!("{}-head-", clip(cluster)).to_lowercase()
}

/// `<cluster>-<group>-worker-` (the `<cluster>-<group>` part clipped to 50, lowercased).
pub fn worker_pod_prefix(cluster: &str, group: &str) -> String {
    format!("{}-worker-", clip(&format!("{cluster}-{group}"))).to_lowercase()
}

/// `<cluster>-head-svc`, or the name the head group gives its Service.
pub fn head_service(cluster: &str, custom: Option<&str>) -> String {
    match custom {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => format!("{cluster}-head-svc"),
    }
}

/// `<cluster>-headless`.
pub fn headless_service(cluster: &str) -> String {
    format!("{cluster}-headless")
}

/// `<cluster>-serve-svc`.
pub fn serve_service(cluster: &str) -> String {
    format!("{cluster}-serve-svc")
}

/// `<cluster>-redis-cleanup`, at most 63 characters (cut from the front).
pub fn redis_cleanup_job(cluster: &str) -> String {
    check_label(&format!("{cluster}-redis-cleanup"))
}

/// KubeRay's name check for the ServiceAccount, Role and auth Secret: at most 50 characters, cut
/// from the front, a leading digit or punctuation replaced by `r`.
pub fn check_name(name: &str) -> String {
    let kept = keep_tail(name, MAX_PREFIX);
    let fixed = fix_start(kept, |c| c.is_ascii_digit());
    fix_start(&fixed, |c| c.is_ascii_punctuation())
}

fn check_label(value: &str) -> String {
    fix_start(keep_tail(value, 63), |c| c.is_ascii_punctuation())
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(MAX_PREFIX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn keep_tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn fix_start(s: &str, bad: impl Fn(char) -> bool) -> String {
    match s.chars().next() {
        Some(c) if bad(c) => format!("r{}", &s[c.len_utf8()..]),
        _ => s.to_owned(),
    }
}

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

    #[test]
    fn prefixes_are_clipped_like_kuberay() {
        let long = "a".repeat(60);
        assert_eq!(head_pod_prefix("Rc"), "rc-head-");
        assert_eq!(worker_pod_prefix("rc", "gpu"), "rc-gpu-worker-");
        assert_eq!(head_pod_prefix(&long).len(), 50 + "-head-".len());
        assert_eq!(check_name(&format!("1{long}")).len(), 50);
    }
}
