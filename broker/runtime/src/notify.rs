//! Single-threaded notifications. [`Notify`]: tasks wait until the next
//! `notify_all`; it wakes a partition's driver on append and waiters on
//! durability. [`Doorbell`]: one task waits, and a ring before it waits is
//! not lost; it wakes a timer loop whose deadline moved.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

/// Wakes every task waiting at the time of `notify_all`.
///
/// Each waiting [`Notified`] holds one slot, which it takes back when it is
/// dropped. That matters: a task that races a notification against a timer
/// or a socket in a loop (the accept loop, a long poll) would otherwise
/// leave one clone of its waker behind per iteration, and glommio counts a
/// task's wakers in an `i16`; the 32,768th clone broke the task's header and
/// killed the shard (issue 25).
#[derive(Default)]
pub struct Notify {
    epoch: Cell<u64>,
    wakers: RefCell<Slab<Waker>>,
}

impl Notify {
    pub fn new() -> Notify {
        Notify::default()
    }

    /// Wakes every task waiting now.
    pub fn notify_all(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        // Take the wakers out before waking them: a woken waker may run
        // code that registers again (glommio schedules, it does not run
        // the task inline, but nothing here should rely on that).
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// Completes at the first `notify_all` after this call.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            epoch: self.epoch.get(),
            slot: None,
        }
    }

    /// How many wakers are registered now (for tests of the bound).
    pub fn waiting(&self) -> usize {
        self.wakers.borrow().len()
    }
}

pub struct Notified<'a> {
    notify: &'a Notify,
    epoch: u64,
    /// The slot this waiter holds, if it is registered in the current epoch.
    slot: Option<usize>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.epoch.get() != self.epoch {
            // `notify_all` emptied the slab: the slot is no longer ours.
            self.slot = None;
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        match self.slot {
            Some(slot) => {
                let w = &mut wakers[slot];
                if !w.will_wake(cx.waker()) {
                    *w = cx.waker().clone();
                }
            }
            None => {
                let slot = wakers.insert(cx.waker().clone());
                drop(wakers);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        // A slot from an earlier epoch was emptied by `notify_all` and may
        // be reused by another waiter now: leave it alone.
        if let Some(slot) = self.slot {
            if self.notify.epoch.get() == self.epoch {
                self.notify.wakers.borrow_mut().remove(slot);
            }
        }
    }
}

/// A wake-up for a single waiting task that keeps a ring until it is
/// awaited. Unlike [`Notify`], a task that waits in a loop (racing a timer)
/// holds one waker slot, not one per iteration.
#[derive(Default)]
pub struct Doorbell {
    rung: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Doorbell {
    pub fn ring(&self) {
        self.rung.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Completes at the next ring, or at once if one came since the last wait.
    pub fn wait(&self) -> DoorbellWait<'_> {
        DoorbellWait(self)
    }
}

pub struct DoorbellWait<'a>(&'a Doorbell);

impl Future for DoorbellWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.rung.replace(false) {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Counting;
    impl Wake for Counting {
        fn wake(self: Arc<Self>) {}
    }

    fn poll_once(f: Pin<&mut Notified<'_>>, waker: &Waker) -> Poll<()> {
        f.poll(&mut Context::from_waker(waker))
    }

    /// The accept loop's pattern: a fresh `notified()` raced and dropped per
    /// iteration, never notified. Each iteration used to leave a waker clone
    /// behind, which wrapped glommio's `i16` reference count at 32,768.
    #[test]
    fn a_dropped_waiter_releases_its_waker_clone() {
        let notify = Notify::new();
        let task = Arc::new(Counting);
        let waker = Waker::from(task.clone());
        for _ in 0..100_000 {
            let mut f = std::pin::pin!(notify.notified());
            assert!(poll_once(f.as_mut(), &waker).is_pending());
            assert!(poll_once(f.as_mut(), &waker).is_pending());
        }
        assert_eq!(notify.waiting(), 0);
        assert_eq!(Arc::strong_count(&task), 2, "the task and our waker only");
    }

    #[test]
    fn notify_all_wakes_every_waiter_and_later_waiters_wait_again() {
        let notify = Notify::new();
        let waker = Waker::from(Arc::new(Counting));
        let mut a = Box::pin(notify.notified());
        let mut b = Box::pin(notify.notified());
        assert!(poll_once(a.as_mut(), &waker).is_pending());
        assert!(poll_once(b.as_mut(), &waker).is_pending());
        assert_eq!(notify.waiting(), 2);
        notify.notify_all();
        assert_eq!(notify.waiting(), 0);
        // A waiter registered after the notification must not lose its slot
        // when an older waiter, whose slot number it may reuse, is dropped.
        let mut c = Box::pin(notify.notified());
        assert!(poll_once(c.as_mut(), &waker).is_pending());
        assert!(poll_once(a.as_mut(), &waker).is_ready());
        drop(a);
        drop(b);
        assert_eq!(notify.waiting(), 1);
        notify.notify_all();
        assert!(poll_once(c.as_mut(), &waker).is_ready());
    }
}
