//! JING PATCH: bounds on the work the engine does outside the instruction
//! loop (see `JING_PATCH.md` at the crate root).
//!
//! Fuel is charged per instruction and per value created, but a lot of work
//! happens where no [`State`](crate::State) is at hand: printing a list
//! (`~`, `upper`, `format`, `pprint`, any filter argument converted to a
//! string), comparing and hashing values, iterating lazy sequences.  A
//! sequence doubled with `l + l` 31 times costs a few hundred instructions
//! but stands for 2^31 items, and a list nested a hundred thousand times deep
//! (or one that contains itself through a namespace) overflows the stack when
//! it is printed, compared or dropped.
//!
//! The render that is running on a thread therefore installs its fuel budget
//! here ([`activate`]), and the walks charge it:
//!
//! * every item produced by an object's iterator ([`charge_item`]),
//! * every byte of a long string compared, hashed, counted or printed
//!   ([`charge_bytes`]).
//!
//! A walk never fails on its own (a `Display` or `PartialEq` impl cannot
//! return an error): once the budget is used up it stops early and the budget
//! stays exhausted, so the render fails at its next fuel check with
//! `OutOfFuel`.  Recursive walks also pass through [`enter`], which refuses to
//! nest deeper than [`MAX_NESTING`]; that exhausts the budget too, and the
//! render fails with a "recursion limit exceeded" error instead.
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use crate::error::{Error, ErrorKind};
use crate::value::DynObject;

/// Deepest nesting of recursive walks (printing, comparing, hashing values,
/// creating nested lazy iterators).  Real data is nowhere near this, and a
/// walk this deep stays far below a 2 MiB thread stack.
pub(crate) const MAX_NESTING: usize = 256;

/// Units of fuel per item visited (the engine's `ITEM_COST`).
const ITEM_UNITS: u64 = 32;

/// Strings shorter than this are not charged: the work on them is of the
/// order of the instruction or item that caused it, which is charged.
const FREE_BYTES: usize = 64;

/// The remaining fuel of one render, in the engine's fuel units, shared by
/// its [`FuelTracker`](crate::vm::fuel::FuelTracker) and the walks.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    remaining: AtomicI64,
    too_deep: AtomicBool,
}

// Without the `fuel` feature no budget is ever made (walks are only bounded
// in depth).
#[cfg_attr(not(feature = "fuel"), allow(dead_code))]
impl Budget {
    pub(crate) fn new(units: i64) -> Arc<Budget> {
        Arc::new(Budget {
            remaining: AtomicI64::new(units),
            too_deep: AtomicBool::new(false),
        })
    }

    /// The remaining units (negative once exhausted).
    #[inline]
    pub(crate) fn get(&self) -> i64 {
        // Only the rendering thread touches a budget, so relaxed loads and
        // stores are enough; atomics just keep `State` `Send`.
        self.remaining.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set(&self, units: i64) {
        self.remaining.store(units, Ordering::Relaxed);
    }

    /// Takes `units`; false once the budget is exhausted.
    #[inline]
    pub(crate) fn take(&self, units: u64) -> bool {
        let remaining = self
            .get()
            .saturating_sub(i64::try_from(units).unwrap_or(i64::MAX));
        self.set(remaining);
        remaining > 0
    }

    /// The error a render fails with once the budget is exhausted.
    pub(crate) fn error(&self) -> Error {
        if self.too_deep.load(Ordering::Relaxed) {
            Error::new(
                ErrorKind::InvalidOperation,
                "recursion limit exceeded: a value is nested too deeply or contains itself",
            )
        } else {
            #[cfg(feature = "fuel")]
            {
                Error::from(ErrorKind::OutOfFuel)
            }
            #[cfg(not(feature = "fuel"))]
            {
                Error::from(ErrorKind::InvalidOperation)
            }
        }
    }
}

/// What walks on this thread charge, and how deep they are.
struct Walks {
    budget: RefCell<Option<Arc<Budget>>>,
    nesting: Cell<usize>,
}

thread_local! {
    static WALKS: Walks = const {
        Walks {
            budget: RefCell::new(None),
            nesting: Cell::new(0),
        }
    };
}

impl Walks {
    /// Charges `units` to the active budget.  True if there is none or it
    /// still has fuel; false once it is exhausted (the walk should stop).
    #[inline]
    fn charge(&self, units: u64) -> bool {
        match *self.budget.borrow() {
            Some(ref budget) => budget.take(units),
            None => true,
        }
    }

    /// Enters one level of a recursive walk, or marks the active budget as
    /// exhausted by nesting and returns false when already too deep.
    #[inline]
    fn enter(&self) -> bool {
        let depth = self.nesting.get();
        if depth >= MAX_NESTING {
            if let Some(ref budget) = *self.budget.borrow() {
                budget.too_deep.store(true, Ordering::Relaxed);
                budget.set(0);
            }
            return false;
        }
        self.nesting.set(depth + 1);
        true
    }
}

/// Makes `budget` the one walks on this thread charge, until the returned
/// guard is dropped (which restores the previous one, for nested renders).
#[cfg(feature = "fuel")]
pub(crate) fn activate(budget: Option<&Arc<Budget>>) -> Activation {
    let previous = WALKS
        .try_with(|w| w.budget.replace(budget.cloned()))
        .ok()
        .flatten();
    Activation { previous }
}

/// Restores the previously active budget when dropped.
#[cfg(feature = "fuel")]
pub(crate) struct Activation {
    previous: Option<Arc<Budget>>,
}

#[cfg(feature = "fuel")]
impl Drop for Activation {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = WALKS.try_with(|w| w.budget.replace(previous));
    }
}

/// Charges one item visited.  False once the budget is exhausted.
#[inline]
pub(crate) fn charge_item() -> bool {
    WALKS.try_with(|w| w.charge(ITEM_UNITS)).unwrap_or(true)
}

/// Charges `n` bytes of string work (nothing for short strings).  False
/// once the budget is exhausted.
#[inline]
pub(crate) fn charge_bytes(n: usize) -> bool {
    n < FREE_BYTES || WALKS.try_with(|w| w.charge(n as u64)).unwrap_or(true)
}

/// Checks that `n` more bytes could be paid for before they are allocated.
/// Fails (and exhausts the budget) if not.
#[cfg_attr(not(feature = "builtins"), allow(dead_code))]
pub(crate) fn ensure_bytes(n: usize) -> Result<(), Error> {
    WALKS
        .try_with(|w| match *w.budget.borrow() {
            Some(ref budget) if (n as u64) >= budget.get().max(0) as u64 => {
                budget.set(0);
                Err(budget.error())
            }
            _ => Ok(()),
        })
        .unwrap_or(Ok(()))
}

/// Enters one level of a recursive walk; `None` when the walk is already
/// [`MAX_NESTING`] levels deep, in which case the active budget is marked as
/// exhausted by nesting.  The caller then stops (prints `...`, compares
/// unequal, yields nothing).
#[inline]
pub(crate) fn enter() -> Option<Nested> {
    match WALKS.try_with(|w| w.enter()) {
        Ok(false) => None,
        _ => Some(Nested(())),
    }
}

/// One level of a recursive walk; leaves it when dropped.
pub(crate) struct Nested(());

impl Drop for Nested {
    #[inline]
    fn drop(&mut self) {
        let _ = WALKS.try_with(|w| w.nesting.set(w.nesting.get().saturating_sub(1)));
    }
}

/// An iterator that charges one item per item and ends once the budget is
/// exhausted.  Its `next` is a level of nesting too: lazy iterators made of
/// lazy iterators recurse there.
pub(crate) struct Charged<I>(pub(crate) I);

impl<I: Iterator> Iterator for Charged<I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        let entered = WALKS
            .try_with(|w| w.charge(ITEM_UNITS) && w.enter())
            .unwrap_or(true);
        if !entered {
            return None;
        }
        let _nested = Nested(());
        self.0.next()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        // It may end early, but only when the render is about to fail.
        self.0.size_hint()
    }
}

/// Drops of nested objects recurse only this deep; deeper objects are
/// released by the outermost drop, one after the other.
const MAX_DROP_NESTING: usize = 64;

struct Drops {
    depth: Cell<usize>,
    deferred: RefCell<Vec<DynObject>>,
}

thread_local! {
    static DROPS: Drops = const {
        Drops {
            depth: Cell::new(0),
            deferred: RefCell::new(Vec::new()),
        }
    };
}

/// Restores the drop depth, also when a drop panics.
struct DropDepth(usize);

impl Drop for DropDepth {
    fn drop(&mut self) {
        let _ = DROPS.try_with(|d| d.depth.set(self.0));
    }
}

/// Drops an object (`release` gives up its reference) without recursing
/// deeper than [`MAX_DROP_NESTING`]: a list nested a million times deep would
/// otherwise overflow the stack when it goes away, whatever the fuel.
pub(crate) fn drop_object(obj: &DynObject, release: impl FnOnce()) {
    let Ok(depth) = DROPS.try_with(|d| d.depth.get()) else {
        // The thread is shutting down; nothing better can be done.
        return release();
    };
    if depth >= MAX_DROP_NESTING {
        // A clone keeps the object alive, so `release` only counts down;
        // the outermost drop frees it later at a shallow depth.
        let keep = obj.clone();
        let _ = DROPS.try_with(move |d| d.deferred.borrow_mut().push(keep));
        return release();
    }
    let _ = DROPS.try_with(|d| d.depth.set(depth + 1));
    {
        let _restore = DropDepth(depth);
        release();
    }
    let deferred = || DROPS.try_with(|d| !d.deferred.borrow().is_empty());
    if depth == 0 && deferred().unwrap_or(false) {
        // Nested drops run at depth 1 from here, so they defer but do not
        // drain themselves.
        let _ = DROPS.try_with(|d| d.depth.set(1));
        let _restore = DropDepth(0);
        while let Ok(Some(next)) = DROPS.try_with(|d| d.deferred.borrow_mut().pop()) {
            drop(next);
        }
    }
}
