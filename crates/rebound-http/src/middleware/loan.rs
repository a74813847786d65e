//! A mutable borrow lent to one borrower at a time: how the middleware
//! gives each attempt the request's `&mut Extensions`.
//!
//! reqwest-middleware hands the middleware a `&'c mut Extensions` and each
//! attempt must pass it down the chain (`Next::run`), whose future keeps
//! the borrow while it runs. The core's attempt loop asks the driver for an
//! attempt through [`AttemptIo::start`](rebound::retry::AttemptIo::start),
//! whose attempt type cannot borrow from the driver (that needs a lifetime
//! per call, `type Attempt<'s>`, and today's compiler cannot prove such a
//! future `Send`). Safe code could only lend them through a lock, from
//! inside a boxed future of each attempt's own: an allocation, a lock and
//! two moves per attempt, on every request.
//!
//! The loop guarantees what makes a plain reborrow sound instead: it holds
//! one attempt at a time, finishing or dropping each before it starts the
//! next, and drops every attempt before it returns (the contract documented
//! on `AttemptIo`, with a test in the core). [`SerialLoan::lend`] is
//! `unsafe` because its caller must uphold exactly that.
//!
//! This module and the one call of `lend` (in `HttpAttempts::start`) are
//! the crate's only `unsafe` code. The tests below run under Miri
//! (`.ci/run`), which checks the reborrows against Rust's aliasing rules.

use std::marker::PhantomData;
use std::ptr::NonNull;

/// A `&'c mut T`, lent again and again to one borrower at a time.
pub(super) struct SerialLoan<'c, T> {
    target: NonNull<T>,
    _borrow: PhantomData<&'c mut T>,
}

// SAFETY: a `SerialLoan<'c, T>` is a `&'c mut T` in all but type, and
// `&'c mut T` is `Send` when `T` is.
unsafe impl<T: Send> Send for SerialLoan<'_, T> {}

impl<'c, T> SerialLoan<'c, T> {
    /// Takes the borrow; the owner sees `target` again, as the last
    /// borrower left it, once the loan is dropped.
    pub(super) fn new(target: &'c mut T) -> Self {
        SerialLoan {
            target: NonNull::from(target),
            _borrow: PhantomData,
        }
    }

    /// Lends the target for one borrower.
    ///
    /// # Safety
    ///
    /// No reference returned by an earlier call may be used again: the
    /// borrower that held it has finished, or been dropped.
    pub(super) unsafe fn lend(&mut self) -> &'c mut T {
        // SAFETY: the pointer comes from a `&'c mut T` that the loan holds
        // for 'c, so it is valid and unaliased for 'c but for the
        // references made here, and the caller guarantees that none of
        // those is used again.
        unsafe { self.target.as_mut() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// A borrower like an attempt: pending once, then it changes the
    /// target.
    async fn append(target: &mut Vec<u32>, n: u32) -> usize {
        let mut yielded = false;
        std::future::poll_fn(|_| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                Poll::Pending
            }
        })
        .await;
        target.push(n);
        target.len()
    }

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn each_borrower_sees_what_the_last_left_and_so_does_the_owner() {
        let mut target = vec![0];
        {
            let mut loan = SerialLoan::new(&mut target);
            for n in 1..=3 {
                // SAFETY: the previous borrower was dropped at the end of
                // the last iteration.
                let mut borrower = pin!(append(unsafe { loan.lend() }, n));
                assert!(poll_once(borrower.as_mut()).is_pending());
                assert_eq!(poll_once(borrower.as_mut()), Poll::Ready(n as usize + 1));
            }
        }
        assert_eq!(target, [0, 1, 2, 3]);
    }

    #[test]
    fn a_borrower_dropped_midway_leaves_the_target_as_it_was() {
        let mut target = vec![7];
        {
            let mut loan = SerialLoan::new(&mut target);
            {
                // SAFETY: the first borrower.
                let mut cut_off = pin!(append(unsafe { loan.lend() }, 8));
                assert!(poll_once(cut_off.as_mut()).is_pending());
            } // dropped, like an attempt past its timeout
              // SAFETY: the first borrower was dropped.
            let mut next = pin!(append(unsafe { loan.lend() }, 9));
            assert!(poll_once(next.as_mut()).is_pending());
            assert_eq!(poll_once(next.as_mut()), Poll::Ready(2));
        }
        assert_eq!(target, [7, 9]);
    }

    #[test]
    fn a_loan_moves_to_another_thread_with_its_target() {
        let mut target = vec![1];
        let mut loan = SerialLoan::new(&mut target);
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: the only borrower.
                unsafe { loan.lend() }.push(2);
            });
        });
        assert_eq!(target, [1, 2]);
    }
}
