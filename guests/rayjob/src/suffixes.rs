//! The 5 random characters of generated names (`<rayjob>-<suffix>` clusters and job ids), drawn from the snapshot's seed.

/// Kubernetes' `generateName` alphabet (no vowels, so no words).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Draws suffixes from the seed: the same snapshot gives the same names.
pub struct Suffixes(u64);

impl Suffixes {
    pub fn new(seed: u64) -> Self {
        Suffixes(seed)
    }

    /// The next suffix.
    pub fn next(&mut self) -> String {
        let mut bits = self.next_u64();
        (0..5)
            .map(|_| {
                let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize];
                bits /= ALPHABET.len() as u64;
                c as char
            })
            .collect()
    }

    /// splitmix64: tiny, and good enough to spread suffixes.
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
