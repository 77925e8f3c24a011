//! Single-threaded notifications. [`Notify`]: tasks wait until the next
//! `notify_all`; it wakes a partition's driver on append and waiters on
//! durability. [`Doorbell`]: one task waits, and a ring before it waits is
//! not lost; it wakes a timer loop whose deadline moved.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    epoch: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn new() -> Notify {
        Notify::default()
    }

    /// Wakes every task waiting now.
    pub fn notify_all(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Completes at the first `notify_all` after this call.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            epoch: self.epoch.get(),
        }
    }
}

pub struct Notified<'a> {
    notify: &'a Notify,
    epoch: u64,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.epoch.get() != self.epoch {
            return Poll::Ready(());
        }
        self.notify.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
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
