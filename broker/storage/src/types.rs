//! Newtypes the storage layer uses. `Offset`, `ProducerId` and
//! `ProducerEpoch` live in `corelog-model`, which every layer shares; they
//! are re-exported here for the storage API.

pub use corelog_model::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

/// Kafka's file name for a segment starting at `base`: the offset zero-padded to 20 digits.
pub fn segment_file_stem(base: Offset) -> String {
    format!("{:020}", base.0)
}
