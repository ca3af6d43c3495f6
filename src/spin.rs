//! A spin lock for the few words of state that pyimmortal keeps.
//!
//! Whoever holds it runs no Python code and never waits for anything else,
//! so a waiter spins only for as long as a few loads and stores (or one
//! `PyMem_RawRealloc`) take. In particular the holder never detaches its
//! thread state, so a free-threaded interpreter's stop-the-world pause,
//! which waits for attached threads, cannot wait for a thread that waits for
//! this lock while the holder waits for the pause.

use core::hint::spin_loop;
use core::sync::atomic::{AtomicBool, Ordering};

/// The lock. All-zero bytes (and `Default`) are an unlocked lock.
#[derive(Default)]
pub struct SpinLock(AtomicBool);

/// Holds a [`SpinLock`]; releases it when dropped.
pub struct SpinGuard<'a>(&'a AtomicBool);

impl SpinLock {
    pub const fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    /// Waits for the lock and takes it.
    pub fn lock(&self) -> SpinGuard<'_> {
        while self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.0.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
        SpinGuard(&self.0)
    }
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
