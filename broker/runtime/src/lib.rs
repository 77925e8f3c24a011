//! Corelog's shard runtime: the only layer (with the server and the binary)
//! that touches glommio. It implements the storage layer's I/O traits on
//! glommio DMA files and runs each partition log's jobs on its shard.

pub mod io;
pub mod notify;
pub mod partition;

pub use io::GlommioIo;
pub use partition::{now_ms, Discarded, Partition};
