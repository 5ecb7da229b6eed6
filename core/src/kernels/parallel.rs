//! Splitting a kernel's fixed work units over a pool of persistent threads.
//!
//! Every kernel cuts its output into units whose boundaries depend only on
//! the geometry (never on the thread count), and computes each unit the same
//! way whichever thread runs it: results are bitwise identical for any
//! number of threads. Threads pull units from a shared queue, so a slow
//! (shared, noisy) core never holds the others back for more than one unit.
//!
//! The threads are spawned once per process and kept: spawning scoped
//! threads on every call cost 10-30 µs per kernel call, a large share of a
//! layer at small batches. A call offers seats to the pool's idle threads
//! and works through the units itself too; when the units run out it
//! withdraws the seats nobody took and waits only for the threads already
//! working, so a pool thread that wakes late (the cores are shared with
//! other processes) costs the call nothing.
//!
//! An idle pool thread spins for [`SPIN`] before it parks: the kernels of
//! one forward pass follow each other within microseconds, and a parked
//! thread takes tens of microseconds to wake. It then parks, so idle
//! threads take no CPU from the other processes on the machine. A caller
//! waiting for the last units of its call spins the same way before it
//! sleeps.
//!
//! The pool keeps as many threads as the largest call asked for, at most
//! [`MAX_THREADS`] - 1 (the calling thread is the last one). Calls from
//! several threads at once share them; a call whose seats stay empty runs
//! its units on its own thread, so results never depend on who helps.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Roughly the work (in FLOPs) worth one more thread: handing units to a
/// pool thread costs a few µs (tens when it has to be woken), and its
/// caches start cold for this kernel's data.
pub(crate) const FLOPS_PER_THREAD: usize = 16_000_000;

/// The most threads one kernel call runs on, whatever the caller allows:
/// every thread holds its own slice of scratch and an OS thread, so a
/// request of 2^40 must not turn into 2^40 of either. Kernels already use
/// no more threads than they have units and [`FLOPS_PER_THREAD`] allows;
/// this caps what is left (several times the cores of current machines).
pub(crate) const MAX_THREADS: usize = 256;

/// How many threads to use for `units` units of `flops` total work when the
/// caller allows `threads`: never more than there are units, than the work
/// pays for, or than [`MAX_THREADS`]. Every kernel sizes its scratch with
/// this same count, so scratch follows the work, not the request.
pub(crate) fn workers(threads: usize, units: usize, flops: usize) -> usize {
    threads
        .clamp(1, MAX_THREADS)
        .min(units.max(1))
        .min((flops / FLOPS_PER_THREAD).max(1))
}

/// The product of `factors`, saturating: a FLOP count for [`workers`] that
/// cannot wrap into a small number, whatever the sizes.
pub(crate) fn flops<const N: usize>(factors: [usize; N]) -> usize {
    factors.into_iter().fold(1, usize::saturating_mul)
}

/// Scratch values [`run`] needs for `workers` threads of `per_thread`
/// values each (`workers` as [`workers`] returns it, so at most
/// [`MAX_THREADS`]).
pub(crate) fn scratch_len(workers: usize, per_thread: usize) -> usize {
    workers
        .clamp(1, MAX_THREADS)
        .saturating_mul(stride(per_thread))
}

/// Scratch values one thread's slice takes for `per_thread` values of
/// work space: rounded up to whole 64-byte cache lines plus one spare line,
/// so no cache line is shared by two threads' slices (whatever the
/// alignment of the whole buffer). Without it, the direct kernel's small
/// per-thread buffers, read in its inner loop, ping-pong between cores.
pub(crate) fn stride(per_thread: usize) -> usize {
    if per_thread == 0 {
        0
    } else {
        // Saturating: a length no slice has, which `run` then refuses.
        per_thread
            .checked_next_multiple_of(16)
            .and_then(|v| v.checked_add(16))
            .unwrap_or(usize::MAX)
    }
}

/// Runs `work(unit, scratch)` for every unit `items` yields, on `workers`
/// threads (the calling one included). Each thread gets its own
/// `per_thread` values of `scratch`, one [`stride`] apart.
///
/// # Panics
/// When `scratch` is shorter than [`scratch_len`] says, or a unit panics
/// (with that unit's panic, once the threads working on the call stop).
pub(crate) fn run<I, F>(workers: usize, items: I, scratch: &mut [f32], per_thread: usize, work: F)
where
    I: Iterator + Send,
    I::Item: Send,
    F: Fn(I::Item, &mut [f32]) + Sync,
{
    run_on(&POOL, workers, items, scratch, per_thread, work);
}

/// [`run`] on the threads of `pool`.
fn run_on<I, F>(
    pool: &'static Pool,
    workers: usize,
    items: I,
    scratch: &mut [f32],
    per_thread: usize,
    work: F,
) where
    I: Iterator + Send,
    I::Item: Send,
    F: Fn(I::Item, &mut [f32]) + Sync,
{
    let workers = workers.clamp(1, MAX_THREADS);
    let len = scratch_len(workers, per_thread);
    assert!(
        scratch.len() >= len,
        "kernel scratch too short: {} values for {workers} threads of {per_thread}",
        scratch.len()
    );
    if workers == 1 {
        let mine = &mut scratch[..per_thread];
        for item in items {
            work(item, mine);
        }
        return;
    }
    let queue = Mutex::new(items);
    // Each thread that joins takes the next slice: which one it gets does
    // not matter, only that no two threads share one.
    let slices = Mutex::new(scratch[..len].chunks_mut(stride(per_thread).max(1)));
    let failed = AtomicBool::new(false);
    let task = || {
        let mine: &mut [f32] = match slices.lock().ok().and_then(|mut s| s.next()) {
            Some(slice) => &mut slice[..per_thread],
            None => &mut [],
        };
        assert_eq!(mine.len(), per_thread, "more threads than scratch slices");
        let _flag = FlagOnPanic(&failed);
        // After a panic the others stop at their next unit: the call fails
        // anyway, and the caller gets the first panic.
        while !failed.load(Ordering::Relaxed) {
            // A poisoned queue (its iterator panicked) has no next unit.
            let Some(item) = queue.lock().ok().and_then(|mut q| q.next()) else {
                break;
            };
            work(item, mine);
        }
    };
    pool.run(workers - 1, &task);
}

/// Sets its flag when dropped by a panic.
struct FlagOnPanic<'a>(&'a AtomicBool);

impl Drop for FlagOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// How long an idle pool thread looks for a new call before it parks:
/// longer than the usual gap between two kernels of a forward pass, short
/// enough that an idle process takes no CPU worth counting.
const SPIN: Duration = Duration::from_micros(50);

/// Spins until `done` or for [`SPIN`], whichever comes first.
fn spin_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() && start.elapsed() < SPIN {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    }
}

/// The process's pool, grown on demand.
static POOL: Pool = Pool::new();

/// What a panicking unit panicked with.
type Payload = Box<dyn Any + Send>;

/// The loop a call's threads run, its lifetime erased (see [`Pool::run`]).
#[derive(Clone, Copy)]
struct Task(&'static (dyn Fn() + Sync));

/// One call in progress: the seats it offers and the threads in them.
#[derive(Default)]
struct Slot {
    /// The call's loop; `None` when the slot is free.
    task: Option<Task>,
    /// Seats no thread has taken yet (0 once the call withdraws them).
    seats: usize,
    /// Pool threads running the task.
    active: usize,
    /// Whether the caller sleeps until `active` reaches 0 (it spins first).
    waiting: bool,
    /// The first panic of a pool thread running the task.
    panic: Option<Payload>,
}

/// What the pool's lock guards.
struct State {
    /// Calls in progress (and free slots, reused: a call allocates nothing).
    slots: Vec<Slot>,
    /// Threads spawned.
    threads: usize,
    /// Threads parked on [`Pool::work`].
    parked: usize,
    /// Set when the system refused a thread: calls then run with fewer.
    cannot_spawn: bool,
}

/// Persistent threads that run the calls' tasks (see the module doc).
struct Pool {
    state: Mutex<State>,
    /// Parked threads wait here for a call.
    work: Condvar,
    /// Callers wait here for the pool threads still running their task.
    done: Condvar,
    /// Seats offered and not yet taken, over all calls: what a spinning
    /// thread watches without taking the lock.
    open: AtomicUsize,
    /// Seats left so far, over all calls: what a spinning caller watches.
    left: AtomicUsize,
}

impl Pool {
    const fn new() -> Self {
        Pool {
            state: Mutex::new(State {
                slots: Vec::new(),
                threads: 0,
                parked: 0,
                cannot_spawn: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            open: AtomicUsize::new(0),
            left: AtomicUsize::new(0),
        }
    }

    /// The state. No code panics while holding the lock, but a poisoned
    /// one would still be consistent: every update is a few plain writes.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `task` on this thread and on up to `helpers` pool threads at
    /// once; returns when every thread running it is done, with the panic
    /// of the first that panicked.
    fn run(&'static self, helpers: usize, task: &(dyn Fn() + Sync)) {
        // SAFETY: the pool threads call the task only between taking a seat
        // (under the lock, while the slot is open) and leaving it
        // (`active` back down, under the lock). `Call` closes the slot and
        // waits until `active` is 0 before this function returns or unwinds
        // (its drop runs on both paths), so no call outlives `task`'s
        // borrow; the two reference types differ only in that lifetime.
        let erased =
            unsafe { std::mem::transmute::<&(dyn Fn() + Sync), &'static (dyn Fn() + Sync)>(task) };
        let mut call = Call {
            pool: self,
            slot: self.open_slot(Task(erased), helpers),
            closed: false,
        };
        task();
        if let Some(payload) = call.close() {
            panic::resume_unwind(payload);
        }
    }

    /// Offers `helpers` seats for `task` in a free slot, and wakes as many
    /// parked threads.
    fn open_slot(&'static self, task: Task, helpers: usize) -> usize {
        let mut state = self.lock();
        self.grow(&mut state, helpers);
        let index = match state.slots.iter().position(|s| s.task.is_none()) {
            Some(i) => i,
            None => {
                state.slots.push(Slot::default());
                state.slots.len() - 1
            }
        };
        state.slots[index] = Slot {
            task: Some(task),
            seats: helpers,
            ..Slot::default()
        };
        self.open.fetch_add(helpers, Ordering::Relaxed);
        if helpers >= state.parked {
            self.work.notify_all();
        } else {
            (0..helpers).for_each(|_| self.work.notify_one());
        }
        index
    }

    /// Spawns threads until there are `helpers` (at most [`MAX_THREADS`]
    /// - 1, the caller being the last).
    fn grow(&'static self, state: &mut State, helpers: usize) {
        while state.threads < helpers.min(MAX_THREADS - 1) && !state.cannot_spawn {
            let spawned = std::thread::Builder::new()
                .name(format!("strata-kernel-{}", state.threads))
                .spawn(move || self.serve());
            match spawned {
                Ok(_) => state.threads += 1,
                Err(_) => state.cannot_spawn = true,
            }
        }
    }

    /// A pool thread's life: take a seat, run the task, leave, spin a
    /// little, park when nothing comes.
    fn serve(&self) {
        loop {
            let (slot, task) = self.take_seat();
            let result = panic::catch_unwind(AssertUnwindSafe(|| (task.0)()));
            self.leave(slot, result.err());
            spin_until(|| self.open.load(Ordering::Relaxed) > 0);
        }
    }

    /// Takes a seat in the first call (by slot) that has one, parking
    /// until one comes.
    fn take_seat(&self) -> (usize, Task) {
        let mut state = self.lock();
        loop {
            if let Some(index) = state.slots.iter().position(|s| s.seats > 0) {
                let slot = &mut state.slots[index];
                slot.seats -= 1;
                slot.active += 1;
                self.open.fetch_sub(1, Ordering::Relaxed);
                return (index, slot.task.expect("a slot with seats has a task"));
            }
            state.parked += 1;
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.parked -= 1;
        }
    }

    /// Leaves a seat in `slot`, keeping the first panic for the caller.
    fn leave(&self, slot: usize, panic: Option<Payload>) {
        let mut state = self.lock();
        let slot = &mut state.slots[slot];
        slot.active -= 1;
        self.left.fetch_add(1, Ordering::Relaxed);
        let later = match slot.panic {
            None => std::mem::replace(&mut slot.panic, panic),
            Some(_) => panic,
        };
        if slot.active == 0 && slot.waiting {
            self.done.notify_all();
        }
        // A payload's drop may panic: not while holding the lock.
        drop(state);
        drop(later);
    }

    /// Threads spawned so far.
    #[cfg(test)]
    fn threads(&self) -> usize {
        self.lock().threads
    }
}

/// A call's slot, closed when the call ends, by a panic too.
struct Call {
    pool: &'static Pool,
    slot: usize,
    closed: bool,
}

impl Call {
    /// Withdraws the seats not taken, waits for the threads in the others
    /// to leave, frees the slot, and returns the first panic among them.
    fn close(&mut self) -> Option<Payload> {
        self.closed = true;
        let pool = self.pool;
        let mut state = pool.lock();
        let seats = std::mem::take(&mut state.slots[self.slot].seats);
        pool.open.fetch_sub(seats, Ordering::Relaxed);
        // The threads still working are on their last unit: spin for it
        // first, as waking from the condition variable takes a while.
        let start = Instant::now();
        while state.slots[self.slot].active > 0 {
            if start.elapsed() < SPIN {
                let left = pool.left.load(Ordering::Relaxed);
                drop(state);
                spin_until(|| pool.left.load(Ordering::Relaxed) != left);
                state = pool.lock();
            } else {
                state.slots[self.slot].waiting = true;
                state = pool
                    .done
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        let slot = &mut state.slots[self.slot];
        slot.task = None;
        slot.waiting = false;
        slot.panic.take()
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.closed {
            // Unwinding from the caller's own panic, which goes on: the
            // pool threads' panics, if any, are dropped.
            drop(self.close());
        }
    }
}

/// Elements per unit of an element-wise pass: large enough that a unit
/// outweighs the queue, small enough to split an activation evenly.
const MAP_CHUNK: usize = 64 * 1024;

/// Values of an element-wise pass worth one more thread: 1 MiB, tens of
/// µs of streaming, against a few µs to hand units to a pool thread (the
/// data, just written by the previous kernel, is often still in cache).
const VALUES_PER_THREAD: usize = 1 << 18;

/// Threads for an element-wise pass over `len` values: one per
/// [`VALUES_PER_THREAD`], at most one per chunk.
fn elementwise_workers(threads: usize, len: usize) -> usize {
    threads
        .clamp(1, MAX_THREADS)
        .min(len.div_ceil(MAP_CHUNK))
        .min((len / VALUES_PER_THREAD).max(1))
}

/// `f(input chunk, output chunk)` over fixed chunks of the two slices, on
/// up to `threads` threads: for memory-bound element-wise passes
/// (activations), which only pay for a second thread on large tensors.
pub(crate) fn map_chunks<F>(threads: usize, input: &[f32], output: &mut [f32], f: F)
where
    F: Fn(&[f32], &mut [f32]) + Sync,
{
    let len = input.len().min(output.len());
    let workers = elementwise_workers(threads, len);
    if workers <= 1 {
        f(&input[..len], &mut output[..len]);
        return;
    }
    let items = input[..len]
        .chunks(MAP_CHUNK)
        .zip(output[..len].chunks_mut(MAP_CHUNK));
    run(workers, items, &mut [], 0, |(i, o), _| f(i, o));
}

/// `f(chunk)` over fixed chunks of `values`, on up to `threads` threads:
/// [`map_chunks`] in place.
pub(crate) fn for_chunks<F>(threads: usize, values: &mut [f32], f: F)
where
    F: Fn(&mut [f32]) + Sync,
{
    let workers = elementwise_workers(threads, values.len());
    if workers <= 1 {
        f(values);
        return;
    }
    run(
        workers,
        values.chunks_mut(MAP_CHUNK),
        &mut [],
        0,
        |chunk, _| f(chunk),
    );
}

/// Values per chunk of a pass over rows of `row` values: whole rows, about
/// [`MAP_CHUNK`] values (at least one row).
fn row_chunk(row: usize) -> usize {
    let row = row.max(1);
    (MAP_CHUNK / row).max(1).saturating_mul(row)
}

/// [`map_chunks`] in chunks of whole rows of `row` values, so that every
/// chunk starts a row: for passes that treat each column of a row its own
/// way (a per-channel affine over NHWC values).
pub(crate) fn map_rows<F>(threads: usize, input: &[f32], output: &mut [f32], row: usize, f: F)
where
    F: Fn(&[f32], &mut [f32]) + Sync,
{
    let len = input.len().min(output.len());
    let chunk = row_chunk(row);
    let workers = elementwise_workers(threads, len).min(len.div_ceil(chunk));
    if workers <= 1 {
        f(&input[..len], &mut output[..len]);
        return;
    }
    let items = input[..len]
        .chunks(chunk)
        .zip(output[..len].chunks_mut(chunk));
    run(workers, items, &mut [], 0, |(i, o), _| f(i, o));
}

/// [`map_rows`] in place.
pub(crate) fn for_rows<F>(threads: usize, values: &mut [f32], row: usize, f: F)
where
    F: Fn(&mut [f32]) + Sync,
{
    let chunk = row_chunk(row);
    let workers = elementwise_workers(threads, values.len()).min(values.len().div_ceil(chunk));
    if workers <= 1 {
        f(values);
        return;
    }
    run(workers, values.chunks_mut(chunk), &mut [], 0, |chunk, _| {
        f(chunk)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::thread::ThreadId;

    /// No request, however large, turns into more threads than the units,
    /// the work or [`MAX_THREADS`] allow, nor into a scratch length that
    /// wraps (issue 9: 2^40 threads aborted, `usize::MAX` overflowed).
    #[test]
    fn workers_follow_the_work_and_the_cap() {
        assert_eq!(workers(usize::MAX, usize::MAX, usize::MAX), MAX_THREADS);
        assert_eq!(workers(1 << 40, 3, usize::MAX), 3);
        assert_eq!(workers(usize::MAX, 1 << 40, 5 * FLOPS_PER_THREAD), 5);
        assert_eq!(workers(0, 0, 0), 1);
        assert_eq!(elementwise_workers(usize::MAX, usize::MAX), MAX_THREADS);
        assert_eq!(scratch_len(usize::MAX, 100), MAX_THREADS * stride(100));
        assert_eq!(scratch_len(2, usize::MAX), usize::MAX);
        assert_eq!(flops([2, usize::MAX, 3]), usize::MAX);
        let seen = Mutex::new(Vec::new());
        let threads = workers(usize::MAX, 3, usize::MAX);
        let mut scratch = vec![0.0; scratch_len(threads, 5)];
        run(threads, 0..3, &mut scratch, 5, |i, mine| {
            assert_eq!(mine.len(), 5);
            seen.lock().unwrap().push(i);
        });
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, [0, 1, 2]);
    }

    /// A private pool (leaked: its threads park forever), so that other
    /// tests running at the same time do not share its threads.
    fn private_pool() -> &'static Pool {
        Box::leak(Box::new(Pool::new()))
    }

    /// Waits (sleeping) until `done`, failing after a long while.
    fn wait_until(done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed().as_secs() < 30, "threads never met");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Runs a call on `workers` threads of `pool` whose first units wait
    /// for every thread to join; returns the threads seen, each with the
    /// address of the scratch slice it got.
    fn meet(pool: &'static Pool, workers: usize) -> HashMap<ThreadId, usize> {
        let seen = Mutex::new(HashMap::new());
        let mut scratch = vec![0.0; scratch_len(workers, 3)];
        run_on(pool, workers, 0..4 * workers, &mut scratch, 3, |_, mine| {
            assert_eq!(mine.len(), 3);
            let me = std::thread::current().id();
            seen.lock().unwrap().insert(me, mine.as_ptr() as usize);
            wait_until(|| seen.lock().unwrap().len() == workers);
        });
        seen.into_inner().unwrap()
    }

    /// Two calls run on the same threads: the pool spawns them once, and
    /// each thread of a call has its own scratch slice.
    #[test]
    fn calls_reuse_the_pool_threads() {
        let pool = private_pool();
        let first = meet(pool, 3);
        let second = meet(pool, 3);
        assert_eq!(first.len(), 3);
        let ids = |m: &HashMap<ThreadId, usize>| m.keys().copied().collect::<HashSet<_>>();
        assert_eq!(ids(&first), ids(&second));
        assert!(first.contains_key(&std::thread::current().id()));
        let slices: HashSet<usize> = second.values().copied().collect();
        assert_eq!(slices.len(), 3, "two threads shared a scratch slice");
        assert_eq!(meet(pool, 2).len(), 2);
        assert_eq!(pool.threads(), 2);
    }

    /// Runs 8 units on 2 threads of `pool`; the unit that `fails` on the
    /// thread it runs on (after both joined) panics.
    fn run_failing(pool: &'static Pool, fails: impl Fn(ThreadId) -> bool + Sync) -> Vec<usize> {
        let seen = Mutex::new(HashSet::new());
        let done = Mutex::new(Vec::new());
        run_on(pool, 2, 0..8, &mut [], 0, |unit, _| {
            let me = std::thread::current().id();
            seen.lock().unwrap().insert(me);
            wait_until(|| seen.lock().unwrap().len() == 2);
            if fails(me) {
                panic!("unit {unit} failed");
            }
            done.lock().unwrap().push(unit);
        });
        done.into_inner().unwrap()
    }

    /// A unit's panic, on a pool thread or on the caller's, reaches the
    /// caller with its own message; the pool works as before afterwards.
    #[test]
    fn a_panicking_unit_reaches_the_caller_and_the_pool_goes_on() {
        let pool = private_pool();
        let caller = std::thread::current().id();
        let message = |r: std::thread::Result<Vec<usize>>| match r {
            Ok(_) => panic!("the panic was lost"),
            Err(e) => e.downcast::<String>().map(|s| *s).unwrap_or_default(),
        };
        for on_pool in [true, false] {
            let failed = panic::catch_unwind(|| run_failing(pool, |me| (me != caller) == on_pool));
            let message = message(failed);
            assert!(
                message.starts_with("unit ") && message.ends_with(" failed"),
                "{message}"
            );
            let mut done = run_failing(pool, |_| false);
            done.sort();
            assert_eq!(done, (0..8).collect::<Vec<_>>());
        }
        assert_eq!(pool.threads(), 1);
    }

    /// Calls from many threads at once share the process's pool, each
    /// getting every one of its units run exactly once.
    #[test]
    fn concurrent_calls_share_the_pool() {
        let callers: Vec<_> = (0..6)
            .map(|t| {
                std::thread::spawn(move || {
                    for round in 0..50 {
                        let units = 1 + (t * 7 + round) % 40;
                        let counts: Vec<AtomicUsize> =
                            (0..units).map(|_| AtomicUsize::new(0)).collect();
                        let mut scratch = vec![0.0; scratch_len(2 + t % 3, 7)];
                        run(2 + t % 3, 0..units, &mut scratch, 7, |u, mine| {
                            mine.fill(u as f32);
                            std::hint::black_box(&mut *mine);
                            assert!(mine.iter().all(|&v| v == u as f32), "slice shared");
                            counts[u].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
    }
}
