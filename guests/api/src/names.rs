//! Names of a RayCluster's children with KubeRay's clipping rules, shared by the host's builders and the reconciler guest.

/// Longest pod-name prefix: 63 minus `-worker-` (8) minus the 5-character random suffix.
const MAX_PREFIX: usize = 50;
/// Longest label value.
const MAX_LABEL: usize = 63;

/// Go's `unicode.IsPunct` on ASCII: the punctuation category, not the symbols (`$+<=>^`|~`).
fn is_go_punct(c: char) -> bool {
    matches!(
        c,
        '!' | '"'
            | '#'
            | '%'
            | '&'
            | '\''
            | '('
            | ')'
            | '*'
            | ','
            | '-'
            | '.'
            | '/'
            | ':'
            | ';'
            | '?'
            | '@'
            | '['
            | '\\'
            | ']'
            | '_'
            | '{'
            | '}'
    )
}

/// Keeps the last `max` bytes of `s` (names are ASCII; a non-ASCII cut point moves right).
fn keep_tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Replaces a leading character that may not start a name with `r`.
fn fix_start(s: &str, bad: impl Fn(char) -> bool) -> String {
    match s.chars().next() {
        Some(c) if bad(c) => format!("r{}", &s[c.len_utf8()..]),
        _ => s.to_owned(),
    }
}

/// A name for the ServiceAccount, Role, auth Secret: at most 50 characters (cut from the front),
/// never starting with a digit or punctuation (replaced by `r`).
pub fn check_name(s: &str) -> String {
    let s = keep_tail(s, MAX_PREFIX);
    let s = fix_start(s, |c| c.is_ascii_digit());
    fix_start(&s, is_go_punct)
}

/// A label value: at most 63 characters (cut from the front), never starting with punctuation.
pub fn check_label(s: &str) -> String {
    fix_start(keep_tail(s, MAX_LABEL), is_go_punct)
}

/// The head Pod's name prefix `<cluster>-head-` (cluster part clipped to 50, lowercased); with
/// deterministic head names the name is `<cluster>-head` and no suffix follows.
pub fn head_pod_prefix(cluster: &str, deterministic: bool) -> String {
    let clipped = clip_prefix(cluster);
    let base = format!("{clipped}-head").to_lowercase();
    if deterministic {
        base
    } else {
        format!("{base}-")
    }
}

/// A worker Pod's name prefix `<cluster>-<group>-worker-` (the `<cluster>-<group>` part clipped to 50).
pub fn worker_pod_prefix(cluster: &str, group: &str) -> String {
    let joined = format!("{cluster}-{group}");
    format!("{}-worker-", clip_prefix(&joined)).to_lowercase()
}

/// The first 50 bytes (pod prefixes are cut at the end, unlike [`check_name`]).
fn clip_prefix(s: &str) -> &str {
    if s.len() <= MAX_PREFIX {
        return s;
    }
    let mut end = MAX_PREFIX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `<cluster>-head-svc`, unless the head group names its own Service.
pub fn head_service_name(cluster: &str, custom: Option<&str>) -> String {
    match custom {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => format!("{cluster}-head-svc"),
    }
}

/// `<cluster>-headless`, the Service multi-host workers find each other through.
pub fn headless_service_name(cluster: &str) -> String {
    format!("{cluster}-headless")
}

/// `<cluster>-serve-svc`.
pub fn serve_service_name(cluster: &str) -> String {
    format!("{cluster}-serve-svc")
}

/// `<cluster>-redis-cleanup`, clipped like a label value (63).
pub fn redis_cleanup_job_name(cluster: &str) -> String {
    check_label(&format!("{cluster}-redis-cleanup"))
}

/// `<cluster>-head` / `<cluster>-worker`, the `ray.io/identifier` label value.
pub fn identifier(cluster: &str, node_type: &str) -> String {
    check_label(&format!("{cluster}-{node_type}"))
}

/// Kubernetes' `generateName` alphabet (no vowels, so no words).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The 5 random characters of a generated name (`<rayservice>-<suffix>` clusters), drawn from
/// a seed: the same seed gives the same suffix, so a guest's plan stays a function of its
/// snapshot. `draw` picks the n-th suffix of that seed, for a second name in one pass.
pub fn random_suffix(seed: u64, draw: u64) -> String {
    // splitmix64: tiny, and good enough to spread suffixes.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(draw.wrapping_add(1)));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut bits = z ^ (z >> 31);
    let base = SUFFIX_ALPHABET.len() as u64;
    (0..5)
        .map(|_| {
            let c = SUFFIX_ALPHABET[(bits % base) as usize];
            bits /= base;
            c as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_prefixes_follow_kuberay() {
        assert_eq!(
            head_pod_prefix("raycluster-complete", false),
            "raycluster-complete-head-"
        );
        assert_eq!(
            head_pod_prefix("raycluster-complete", true),
            "raycluster-complete-head"
        );
        assert_eq!(
            worker_pod_prefix("rc", "small-group"),
            "rc-small-group-worker-"
        );
        assert_eq!(head_pod_prefix("MyCluster", false), "mycluster-head-");
    }

    #[test]
    fn long_pod_prefixes_are_cut_at_the_end() {
        let long = "a".repeat(60);
        assert_eq!(
            head_pod_prefix(&long, false),
            format!("{}-head-", "a".repeat(50))
        );
        assert_eq!(
            worker_pod_prefix(&"b".repeat(45), "group-x"),
            format!("{}-grou-worker-", "b".repeat(45))
        );
    }

    #[test]
    fn long_names_are_cut_at_the_front_and_never_start_with_a_digit() {
        let name = format!("{}1{}", "x".repeat(10), "a".repeat(49));
        assert_eq!(check_name(&name), format!("r{}", "a".repeat(49)));
        assert_eq!(check_name("9lives"), "rlives");
        assert_eq!(check_name("-dash"), "rdash");
        assert_eq!(check_name("fine"), "fine");
    }

    #[test]
    fn label_values_keep_their_last_63_characters() {
        let long = format!("{}-head", "c".repeat(70));
        assert_eq!(check_label(&long).len(), 63);
        assert!(check_label(&long).ends_with("-head"));
    }

    #[test]
    fn service_and_job_names() {
        assert_eq!(head_service_name("rc", None), "rc-head-svc");
        assert_eq!(head_service_name("rc", Some("custom")), "custom");
        assert_eq!(head_service_name("rc", Some("")), "rc-head-svc");
        assert_eq!(headless_service_name("rc"), "rc-headless");
        assert_eq!(serve_service_name("rc"), "rc-serve-svc");
        assert_eq!(redis_cleanup_job_name("rc"), "rc-redis-cleanup");
        assert_eq!(identifier("rc", "worker"), "rc-worker");
    }

    #[test]
    fn prefixes_are_clipped_like_kuberay() {
        let long = "a".repeat(60);
        assert_eq!(head_pod_prefix("Rc", false), "rc-head-");
        assert_eq!(worker_pod_prefix("rc", "gpu"), "rc-gpu-worker-");
        assert_eq!(head_pod_prefix(&long, false).len(), 50 + "-head-".len());
        assert_eq!(check_name(&format!("1{long}")).len(), 50);
    }

    #[test]
    fn random_suffixes_come_from_the_seed() {
        assert_eq!(random_suffix(42, 0), random_suffix(42, 0));
        assert_ne!(random_suffix(42, 0), random_suffix(42, 1));
        assert_ne!(random_suffix(42, 0), random_suffix(7, 0));
        assert!(random_suffix(1, 0).bytes().all(|c| SUFFIX_ALPHABET.contains(&c)));
        assert_eq!(random_suffix(3, 9).len(), 5);
    }

    #[test]
    fn only_go_punctuation_is_replaced_at_the_start() {
        // Go's `unicode.IsPunct` leaves symbols alone, so KubeRay keeps a leading `$` or `+`.
        assert_eq!(check_label("_x"), "rx");
        assert_eq!(check_label("+x"), "+x");
    }
}
