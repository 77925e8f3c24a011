//! Corelog's shard runtime: the only layer (with the server and the binary)
//! that touches glommio. It implements the storage layer's I/O traits on
//! glommio DMA files and runs each partition log's jobs on its shard.

pub mod io;
pub mod latency;
pub mod notify;
pub mod partition;

pub use io::GlommioIo;
pub use partition::{now_ms, Discarded, Partition};

/// Runs `f` to completion on a new single-threaded executor, pinned to
/// `cpu` when that core exists. Tools and benchmarks use it so that only
/// this layer names the executor.
pub fn run_on_core<T, F, Fut>(cpu: Option<usize>, f: F) -> std::io::Result<T>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placement = match cpu {
        Some(c) if c < cores => glommio::Placement::Fixed(c),
        _ => glommio::Placement::Unbound,
    };
    let ex = glommio::LocalExecutorBuilder::new(placement)
        .make()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(ex.run(f()))
}

/// Spawns a task on the current executor; the returned handle yields its output.
pub fn spawn_local<T: 'static>(
    f: impl std::future::Future<Output = T> + 'static,
) -> glommio::Task<T> {
    glommio::spawn_local(f)
}

/// Runs `f` on the executor's pool of blocking threads and waits for it
/// without blocking the executor: for work that blocks in syscalls (a
/// benchmark's device measurement between windows of its workload).
pub async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    glommio::executor().spawn_blocking(f).await
}
