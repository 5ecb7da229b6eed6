//! Splitting a kernel's fixed work units over scoped threads.
//!
//! Every kernel cuts its output into units whose boundaries depend only on
//! the geometry (never on the thread count), and computes each unit the same
//! way whichever thread runs it: results are bitwise identical for any
//! number of threads. Threads pull units from a shared queue, so a slow
//! (shared, noisy) core never holds the others back for more than one unit.

use std::sync::Mutex;

/// Roughly the work (in FLOPs) worth one more thread: spawning and joining
/// one costs about 10 µs here, and a new thread starts with cold caches.
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
/// threads (the calling one included). Thread `i` gets its own
/// `per_thread` values at `scratch[i * stride(per_thread)..]`.
///
/// # Panics
/// When `scratch` is shorter than [`scratch_len`] says, or a unit panics.
pub(crate) fn run<I, F>(workers: usize, items: I, scratch: &mut [f32], per_thread: usize, work: F)
where
    I: Iterator + Send,
    I::Item: Send,
    F: Fn(I::Item, &mut [f32]) + Sync,
{
    let workers = workers.clamp(1, MAX_THREADS);
    let stride = stride(per_thread);
    assert!(
        scratch.len() >= scratch_len(workers, per_thread),
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
    let next = || queue.lock().expect("a kernel thread panicked").next();
    let (mine, rest) = scratch.split_at_mut(stride);
    let mine = &mut mine[..per_thread];
    std::thread::scope(|s| {
        let mut rest = rest;
        for _ in 1..workers {
            let (theirs, tail) = std::mem::take(&mut rest).split_at_mut(stride);
            let theirs = &mut theirs[..per_thread];
            rest = tail;
            let (next, work) = (&next, &work);
            s.spawn(move || {
                while let Some(item) = next() {
                    work(item, theirs);
                }
            });
        }
        while let Some(item) = next() {
            work(item, mine);
        }
    });
}

/// Elements per unit of an element-wise pass: large enough that a unit
/// outweighs the queue, small enough to split an activation evenly.
const MAP_CHUNK: usize = 64 * 1024;

/// Threads for an element-wise pass over `len` values: one per million
/// values (a pass is memory-bound), at most one per chunk.
fn elementwise_workers(threads: usize, len: usize) -> usize {
    threads
        .clamp(1, MAX_THREADS)
        .min(len.div_ceil(MAP_CHUNK))
        .min((len >> 20).max(1))
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
}
