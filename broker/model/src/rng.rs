//! The one seeded generator of Corelog's deterministic code and tests:
//! SplitMix64 (Steele, Lea and Flood, 2014). The same seed gives the same
//! sequence on every machine and build, so a failing seed of a simulation
//! replays exactly, and a coordinator seeded the same makes the same member
//! ids. Not for anything that must be unpredictable.

/// A SplitMix64 generator: 64 bits of state, one addition and three
/// mixing steps per number.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0), uniform enough for tests: the
    /// modulo bias is below 2^-32 for any `n` under 2^32.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    #[test]
    fn the_sequence_is_splitmix64s_reference_sequence() {
        // The first outputs for seed 1234567 of the reference
        // implementation (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            vec![
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn below_stays_below_and_zero_is_zero() {
        let mut r = SplitMix64::new(7);
        assert_eq!(r.below(0), 0);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
