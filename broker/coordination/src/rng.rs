//! Member ids from the coordinator's seeded generator
//! ([`corelog_model::rng::SplitMix64`]), so that a seeded simulation of the
//! coordinator replays exactly.

use corelog_model::rng::SplitMix64;

/// A random (version 4) UUID in its hyphenated text form, as Kafka's
/// member ids carry.
pub(crate) fn uuid(rng: &mut SplitMix64) -> String {
    let hi = rng.next_u64();
    let lo = rng.next_u64();
    let bytes = ((hi as u128) << 64 | lo as u128).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}
