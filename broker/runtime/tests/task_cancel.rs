//! Dropping a glommio task that has not finished cancels it and frees it
//! (vendored glommio, patch 4). Before the patch every such task leaked its
//! allocation: each connection's watchdog, and each long-poll wait cancelled
//! when its Fetch answered, cost about 200 bytes for the life of the
//! process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// Counts the bytes this test binary holds, to see a leak without waiting
/// for RSS to move.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TASKS: usize = 20_000;

fn live_bytes_after(drop_tasks: impl std::future::Future<Output = ()> + 'static) -> isize {
    corelog_runtime::run_on_core(None, || async move {
        // Warm up whatever the executor allocates once.
        drop_tasks_of_each_kind(100).await;
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        drop_tasks.await;
        // Let the cancelled tasks run once, which drops their futures.
        glommio::timer::sleep(Duration::from_millis(50)).await;
        LIVE_BYTES.load(Ordering::Relaxed) - before
    })
    .expect("executor")
}

async fn drop_tasks_of_each_kind(n: usize) {
    for _ in 0..n {
        let sleeping = glommio::spawn_local(async {
            glommio::timer::sleep(Duration::from_secs(600)).await;
        });
        let pending = glommio::spawn_local(futures_lite::future::pending::<()>());
        // Both have started and are waiting when they are dropped.
        glommio::executor().yield_now().await;
        drop(sleeping);
        drop(pending);
    }
}

#[test]
fn dropping_a_waiting_task_frees_it() {
    let grown = live_bytes_after(drop_tasks_of_each_kind(TASKS));
    // The leak was about 100 bytes per task, 4 MB here.
    assert!(
        grown < 256 << 10,
        "{grown} bytes still held after dropping {} waiting tasks",
        2 * TASKS
    );
}

#[test]
fn dropping_a_task_before_it_first_runs_frees_it() {
    let grown = live_bytes_after(async {
        for _ in 0..TASKS {
            drop(glommio::spawn_local(futures_lite::future::pending::<()>()));
        }
    });
    assert!(grown < 256 << 10, "{grown} bytes still held");
}
