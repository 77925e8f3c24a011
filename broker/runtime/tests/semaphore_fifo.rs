//! glommio's semaphore as Corelog relies on it (vendored glommio, patch 3):
//! units go to waiters strictly in arrival order, and units handed to a
//! woken waiter are its own even if another task asks before it runs.
//! Connections answer in order; budgets taken out of order deadlocked them.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use glommio::sync::Semaphore;

fn run(f: impl std::future::Future<Output = ()>) {
    corelog_runtime::run_on_core(None, || f).expect("executor");
}

async fn settle() {
    glommio::timer::sleep(Duration::from_millis(20)).await;
}

#[test]
fn units_released_to_a_woken_waiter_are_not_taken_by_a_later_acquirer() {
    run(async {
        let sem = Rc::new(Semaphore::new(1));
        let order = Rc::new(RefCell::new(Vec::new()));
        let held = sem.clone().acquire_static_permit(1).await.expect("first");
        let first_waiter = {
            let (sem, order) = (sem.clone(), order.clone());
            glommio::spawn_local(async move {
                let permit = sem.acquire_static_permit(1).await.expect("waiter");
                order.borrow_mut().push("waiter");
                settle().await;
                drop(permit);
            })
        };
        settle().await;
        // Release, then ask again before the woken waiter has run.
        drop(held);
        assert!(
            sem.clone().try_acquire_static_permit(1).is_err(),
            "the released unit belongs to the waiter"
        );
        let late = {
            let (sem, order) = (sem.clone(), order.clone());
            glommio::spawn_local(async move {
                let _permit = sem.acquire_static_permit(1).await.expect("late");
                order.borrow_mut().push("late");
            })
        };
        first_waiter.await;
        late.await;
        assert_eq!(*order.borrow(), vec!["waiter", "late"]);
    });
}

#[test]
fn a_waiter_that_cannot_be_satisfied_holds_back_smaller_waiters_behind_it() {
    run(async {
        let sem = Rc::new(Semaphore::new(2));
        let order = Rc::new(RefCell::new(Vec::new()));
        let a = sem.clone().acquire_static_permit(1).await.expect("a");
        let b = sem.clone().acquire_static_permit(1).await.expect("b");
        let mut tasks = Vec::new();
        for (name, units) in [("big", 2), ("small", 1)] {
            let (sem, order) = (sem.clone(), order.clone());
            tasks.push(glommio::spawn_local(async move {
                let _p = sem.acquire_static_permit(units).await.expect("acquire");
                order.borrow_mut().push(name);
            }));
            settle().await;
        }
        drop(a);
        settle().await;
        assert!(
            order.borrow().is_empty(),
            "one unit is not enough for the head"
        );
        drop(b);
        for t in tasks {
            t.await;
        }
        assert_eq!(*order.borrow(), vec!["big", "small"]);
    });
}

#[test]
fn a_granted_waiter_dropped_before_it_ran_passes_its_units_on() {
    run(async {
        let sem = Rc::new(Semaphore::new(1));
        let held = sem.clone().acquire_static_permit(1).await.expect("held");
        let dropped = {
            let sem = sem.clone();
            glommio::spawn_local(async move {
                let _p = sem.acquire_static_permit(1).await;
            })
        };
        settle().await;
        drop(held);
        // Granted, not yet run: cancel it.
        drop(dropped);
        settle().await;
        assert!(
            sem.clone().try_acquire_static_permit(1).is_ok(),
            "the unit came back"
        );
    });
}
