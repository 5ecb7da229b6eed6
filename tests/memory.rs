//! Memory behaviour of inference, measured with a counting global allocator:
//! `predict_into` with a reused workspace makes no allocation of its own in
//! steady state (matrixmultiply's per-GEMM packing buffer is the one
//! exception, counted separately), and the peak memory of the cifar-style
//! network stays within 1.5x of weights + the two largest activations + the
//! workspace.
//!
//! Only the current thread's allocations are counted, so the other tests of
//! this binary cannot disturb the figures; the model runs on one thread.

#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use strata::prelude::*;
use strata::Context;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize, alloc: bool) {
    // `try_with`: the thread-locals may be gone while a thread shuts down.
    let _ = ALLOCS.try_with(|a| a.set(a.get() + usize::from(alloc)));
    let _ = LIVE.try_with(|l| {
        l.set(l.get() + delta);
        let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
    });
}

// SAFETY: forwards every call to the system allocator unchanged; the
// bookkeeping touches only const-initialised thread-locals, which never
// allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        // SAFETY: the caller's layout, forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize), false);
        // SAFETY: `ptr` came from `System` through `alloc` or `realloc`
        // with this layout, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize, true);
        // SAFETY: as in `dealloc`, with the caller's valid `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The GEMM call counter is process-wide: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

macro_rules! cifar_cnn {
    () => {
        sequential![
            Input(32, 32, 3) => Conv2D(32, (3, 3), same) => relu => Conv2D(32, (3, 3)) => relu
            => MaxPool(2, 2) => Dropout(0.25) => Conv2D(64, (3, 3), same) => relu
            => Conv2D(64, (3, 3)) => relu => MaxPool(2, 2) => Dropout(0.25) => Flatten
            => Dense(512) => relu => Dropout(0.5) => Dense(10) => softmax
        ]
    };
}

fn images(n: usize) -> Batch<Shape3<U32, U32, U3>> {
    Batch::from_vec(
        n,
        (0..n * 3072)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect(),
    )
    .unwrap()
}

#[test]
fn predict_into_allocates_nothing_of_its_own_in_steady_state() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = cifar_cnn!();
    // Batch 8 takes the small-batch kernels, batch 64 the GEMM ones.
    for batch in [8, 64] {
        let x = images(batch);
        let mut out = Batch::zeros(0);
        let mut ws = Context::inference().with_threads(1);
        for _ in 0..3 {
            net.predict_into(&x, &mut out, &mut ws);
        }
        let expected = net.predict(&x);
        let gemms_before = strata::kernels::sgemm_calls();
        let before = allocs();
        for _ in 0..5 {
            net.predict_into(&x, &mut out, &mut ws);
        }
        let made = allocs() - before;
        let gemms = strata::kernels::sgemm_calls() - gemms_before;
        println!("batch {batch}, 5 calls: {made} allocations, {gemms} matrixmultiply calls");
        assert_eq!(out, expected, "the reused buffers give the same result");
        // matrixmultiply allocates one packing buffer per call, nothing else.
        assert_eq!(
            made, gemms,
            "allocations other than matrixmultiply's packing buffers"
        );
    }
}

#[test]
fn peak_memory_at_batch_256_is_bounded() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let net = cifar_cnn!();
    let x = images(256);
    let mut ws = Context::inference().with_threads(1);
    let mut out = Batch::zeros(0);
    net.predict_into(&x, &mut out, &mut ws);
    net.predict_into(&x, &mut out, &mut ws);
    let peak = (PEAK.with(Cell::get) - base) as usize;

    let weights = net.param_count() * 4;
    // The two largest activations: 32x32x32 and 30x30x32 per image.
    let largest = 256 * (32 * 32 * 32 + 30 * 30 * 32) * 4;
    // The workspace: the kernels' scratch (bounded whatever the batch size).
    let scratch = ws.scratch_len() * 4;
    let bound = weights + largest + scratch;
    let mb = |b: usize| b as f64 / 1e6;
    println!(
        "batch 256: peak {:.1} MB (input {:.1} MB included); weights {:.1} MB + two largest activations {:.1} MB \
         + scratch {:.1} MB = {:.1} MB; ratio {:.3}",
        mb(peak),
        mb(x.as_slice().len() * 4),
        mb(weights),
        mb(largest),
        mb(scratch),
        mb(bound),
        peak as f64 / bound as f64
    );
    assert!(peak as f64 <= 1.5 * bound as f64);
}

/// An inverted-residual network (MobileNetV2's blocks: the activations
/// grow six-fold inside each block and shrink at its end) with the batch
/// size changing from call to call: the buffers the context hands out
/// grow to what the calls need and then stop allocating, and they never
/// hold more than three of the largest activation at once (a block's
/// input, its expansion and its depthwise output).
#[test]
fn residual_blocks_reach_a_steady_state_at_any_batch_mix() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = sequential![
        Input(32, 32, 3)
        => Conv2D(16, (3, 3), strides = (2, 2), padding = same) => ReLU(max_value = 6)
        => Residual({ Conv2D(96, (1, 1)) => ReLU(max_value = 6)
            => DepthwiseConv2D((3, 3), same) => ReLU(max_value = 6) => Conv2D(16, (1, 1)) })
        => Conv2D(96, (1, 1)) => ReLU(max_value = 6)
        => ZeroPadding2D(((0, 1), (0, 1))) => DepthwiseConv2D((3, 3), strides = (2, 2))
        => ReLU(max_value = 6) => Conv2D(24, (1, 1))
        => Residual({ Conv2D(144, (1, 1)) => ReLU(max_value = 6)
            => DepthwiseConv2D((3, 3), same) => ReLU(max_value = 6) => Conv2D(24, (1, 1)) })
        => GlobalAveragePooling2D => Dense(10, activation = softmax)
    ];
    let batches = [8, 1, 16, 3];
    let xs: Vec<_> = batches.iter().map(|&n| images(n)).collect();
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let mut ws = Context::inference().with_threads(1);
    let mut out = Batch::zeros(0);
    for _ in 0..3 {
        for x in &xs {
            net.predict_into(x, &mut out, &mut ws);
        }
    }
    let peak = (PEAK.with(Cell::get) - base) as usize;
    // A copy of each output would allocate: one value now, all below.
    let mut firsts = Vec::with_capacity(xs.len());
    let gemms_before = strata::kernels::sgemm_calls();
    let before = allocs();
    for x in &xs {
        net.predict_into(x, &mut out, &mut ws);
        firsts.push(out.as_slice()[0]);
    }
    let made = allocs() - before;
    let gemms = strata::kernels::sgemm_calls() - gemms_before;
    println!("batch mix {batches:?}, one call each: {made} allocations, {gemms} matrixmultiply calls; peak {peak} bytes");
    assert_eq!(
        made, gemms,
        "allocations other than matrixmultiply's packing buffers"
    );
    for (x, first) in xs.iter().zip(firsts) {
        net.predict_into(x, &mut out, &mut ws);
        assert_eq!(out, net.predict(x), "batch {}", x.batch_size());
        assert_eq!(out.as_slice()[0], first);
    }
    // The largest activation: 16×16×144 per sample of the largest batch.
    let largest = 16 * 16 * 16 * 144 * 4;
    let weights = net.param_count() * 4;
    let inputs: usize = xs.iter().map(|x| x.as_slice().len() * 4).sum();
    let scratch = ws.scratch_len() * 4;
    let bound = weights + 3 * largest + scratch;
    assert!(
        peak <= inputs + bound + bound / 2,
        "peak {peak} bytes over 1.5 × (weights + three largest activations + scratch) = {bound} + inputs {inputs}"
    );
}
