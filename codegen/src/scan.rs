//! The native loop of a `scan`.
//!
//! The body of a [`ScanKernel`] is compiled once, as an entry function of its own
//! in the program's module, and the outer entry calls [`kiln_scan`] with it. The
//! loop runs the body once per step over a buffer table of its own: the body's
//! temporaries in an arena allocated once, its arguments pointing at the current
//! carries, at this step's slice of each stacked input (read in place) and at the
//! constants, and its outputs pointing at the next carry slot and at this step's
//! slice of each stacked result, so the body's kernels store there directly.
//! Carries alternate between two slots, the last step's slot being the result
//! buffer. No step allocates; only outputs the body does not compute itself (an
//! argument passed through, a value returned twice) are copied.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use kiln_ir::kernel::{BufferId, BufferKind, ScanKernel};

use crate::buffer::AlignedBuffer;
use crate::library::CallContext;
use crate::lower::EntryFn;

/// Where a body buffer lives between steps.
#[derive(Clone, Debug)]
enum Home {
    /// Set at every step (an argument of the body).
    Arg,
    /// At this byte offset of the body's arena.
    Arena(usize),
    /// A literal of the body, copied into memory the loop owns.
    Const(Vec<u8>),
    /// Never addressed (fused into its consumer).
    Nowhere,
}

/// What the loop needs to know of one scan kernel and its body, fixed at compile
/// time.
#[derive(Clone, Debug)]
pub struct ScanDesc {
    length: usize,
    reverse: bool,
    carries: usize,
    xs: usize,
    /// Outer buffers: initial carries, stacked inputs, constants.
    operands: Vec<BufferId>,
    /// Outer buffers of the results (final carries, then stacked `ys`).
    results: Vec<Option<BufferId>>,
    /// The body's buffer of each argument and each output.
    body_args: Vec<BufferId>,
    body_outputs: Vec<BufferId>,
    /// Bytes of each body argument (a carry, one step's slice of an input, a
    /// constant) and each output (a carry, one step's `ys`).
    arg_bytes: Vec<usize>,
    out_bytes: Vec<usize>,
    /// Whether output `j` is stored by the body's kernels straight at its
    /// destination (a temporary, and not an earlier output too); the others are
    /// copied there after the step.
    in_place: Vec<bool>,
    homes: Vec<Home>,
    arena_bytes: usize,
}

impl ScanDesc {
    /// The loop of `scan`.
    pub fn new(scan: &ScanKernel) -> Self {
        let body = &scan.body;
        let plan = body.plan_memory();
        let homes = body
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| match &b.kind {
                BufferKind::Arg(_) => Home::Arg,
                BufferKind::Const(t) => Home::Const(t.as_bytes().to_vec()),
                BufferKind::Temp => plan.offsets[i].map_or(Home::Nowhere, Home::Arena),
            })
            .collect();
        let bytes = |b: &BufferId| body.buffer(*b).ty.size_bytes();
        let in_place = body
            .outputs
            .iter()
            .enumerate()
            .map(|(j, &o)| {
                body.buffer(o).kind == BufferKind::Temp
                    && plan.offset(o).is_some()
                    && !body.outputs[..j].contains(&o)
            })
            .collect();
        ScanDesc {
            length: scan.length,
            reverse: scan.reverse,
            carries: scan.carries,
            xs: scan.xs,
            operands: scan.operands.clone(),
            results: scan.results.clone(),
            body_args: body.args.clone(),
            body_outputs: body.outputs.clone(),
            arg_bytes: body.args.iter().map(bytes).collect(),
            out_bytes: body.outputs.iter().map(bytes).collect(),
            in_place,
            homes,
            arena_bytes: plan.arena_bytes,
        }
    }

    /// Bytes the loop allocates: the body's arena and constants, two slots per
    /// carry.
    pub fn working_bytes(&self) -> usize {
        let consts: usize = self
            .homes
            .iter()
            .map(|h| match h {
                Home::Const(b) => b.len(),
                _ => 0,
            })
            .sum();
        self.arena_bytes + consts + 2 * self.arg_bytes[..self.carries].iter().sum::<usize>()
    }
}

/// A loop's buffer table and the memory it owns.
struct ScanState {
    desc: ScanDesc,
    /// The body's buffer table, rewritten at every step.
    table: Vec<*mut u8>,
    /// Each body buffer's own memory (null for arguments).
    home: Vec<*mut u8>,
    /// Per carry: the slot of odd steps from the end, and the slot of the last
    /// step when the final carry has no result buffer.
    slots: Vec<[AlignedBuffer; 2]>,
    /// Per carry, where the last step wrote it, and where the last step writes it.
    prev: Vec<*mut u8>,
    last: Vec<*mut u8>,
    _arena: AlignedBuffer,
    _consts: Vec<AlignedBuffer>,
}

/// A loop's state, owned by the [`CallContext`] but allocated apart from it: the
/// body's library calls borrow the context mutably while the loop runs.
pub(crate) struct ScanHandle(NonNull<ScanState>);

// SAFETY: the state owns its memory; the raw pointers in it address that memory or
// the caller's buffers during a call, and a context is used by one thread at a time.
unsafe impl Send for ScanHandle {}

impl std::fmt::Debug for ScanHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScanHandle")
    }
}

impl Drop for ScanHandle {
    fn drop(&mut self) {
        // SAFETY: created by `Box::into_raw` in `ScanHandle::new`, dropped once.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

impl ScanHandle {
    /// Allocates the loop's memory; `None` if the allocator refuses.
    pub(crate) fn new(desc: &ScanDesc) -> Option<Self> {
        let arena = AlignedBuffer::try_zeroed(desc.arena_bytes)?;
        let mut consts = Vec::new();
        let mut home = Vec::with_capacity(desc.homes.len());
        for h in &desc.homes {
            home.push(match h {
                Home::Arg | Home::Nowhere => std::ptr::null_mut(),
                // SAFETY: the body's plan keeps every temporary inside its arena.
                Home::Arena(off) => unsafe { arena.as_mut_ptr().add(*off) },
                Home::Const(bytes) => {
                    let b = AlignedBuffer::try_from_bytes(bytes)?;
                    let p = b.as_mut_ptr();
                    consts.push(b);
                    p
                }
            });
        }
        let slots = desc.arg_bytes[..desc.carries]
            .iter()
            .map(|&n| Some([AlignedBuffer::try_zeroed(n)?, AlignedBuffer::try_zeroed(n)?]))
            .collect::<Option<Vec<_>>>()?;
        let state = ScanState {
            desc: desc.clone(),
            table: home.clone(),
            home,
            slots,
            prev: vec![std::ptr::null_mut(); desc.carries],
            last: vec![std::ptr::null_mut(); desc.carries],
            _arena: arena,
            _consts: consts,
        };
        Some(ScanHandle(NonNull::from(Box::leak(Box::new(state)))))
    }
}

impl ScanState {
    /// Runs every step of the loop over the outer buffer table `bufs`.
    ///
    /// # Safety
    /// `bufs` must be the live buffer table of the program the loop belongs to,
    /// `body` the compiled body, and `ctx` the program's context, not borrowed.
    unsafe fn run(&mut self, ctx: *mut CallContext, bufs: *const *mut u8, body: EntryFn) -> u32 {
        let ScanState {
            desc: d,
            table,
            home,
            slots,
            prev,
            last,
            ..
        } = self;
        // SAFETY: every buffer id of the descriptor names an outer buffer.
        let outer = |b: BufferId| unsafe { *bufs.add(b.index()) };
        let (c, x, n) = (d.carries, d.xs, d.length);
        for j in c + x..d.operands.len() {
            table[d.body_args[j].index()] = outer(d.operands[j]);
        }
        for i in 0..c {
            last[i] = d.results[i].map_or(slots[i][1].as_mut_ptr(), outer);
        }
        if n == 0 {
            for (i, &to) in last.iter().enumerate() {
                if d.results[i].is_some() {
                    // SAFETY: both buffers hold the carry's type; they are distinct.
                    unsafe { std::ptr::copy(outer(d.operands[i]), to, d.arg_bytes[i]) };
                }
            }
            return 0;
        }
        for step in 0..n {
            let t = if d.reverse { n - 1 - step } else { step };
            let into_last = (n - 1 - step) % 2 == 0;
            for i in 0..c {
                let from = if step == 0 {
                    outer(d.operands[i])
                } else {
                    prev[i]
                };
                table[d.body_args[i].index()] = from;
                prev[i] = if into_last {
                    last[i]
                } else {
                    slots[i][0].as_mut_ptr()
                };
            }
            for k in c..c + x {
                // SAFETY: step `t` of a stacked input of `n` steps is inside it.
                table[d.body_args[k].index()] =
                    unsafe { outer(d.operands[k]).add(t * d.arg_bytes[k]) };
            }
            // Where output `j` goes this step: the next carry slot, or this step's
            // slice of its stacked result (nowhere if nothing reads it).
            let dest = |j: usize| -> Option<*mut u8> {
                if j < c {
                    Some(prev[j])
                } else {
                    // SAFETY: as for the inputs.
                    d.results[j].map(|r| unsafe { outer(r).add(t * d.out_bytes[j]) })
                }
            };
            for (j, &o) in d.body_outputs.iter().enumerate() {
                if d.in_place[j] {
                    table[o.index()] = dest(j).unwrap_or(home[o.index()]);
                }
            }
            // SAFETY: the table holds a live buffer of the body's type for every
            // body buffer; the context is the program's.
            let status = unsafe { body(table.as_ptr(), ctx) };
            if status != 0 {
                return status;
            }
            for (j, &o) in d.body_outputs.iter().enumerate() {
                if !d.in_place[j]
                    && let Some(to) = dest(j)
                {
                    // SAFETY: source and destination hold the output's type; a
                    // carry's source is never its own next slot.
                    unsafe { std::ptr::copy(table[o.index()], to, d.out_bytes[j]) };
                }
            }
        }
        0
    }
}

/// Runs scan `index` of `ctx` over the buffer table `bufs`, calling `body` once per
/// step; returns 0 on success, else the failed call's status with its message in
/// the context. Never unwinds into generated code.
///
/// # Safety
/// `ctx` must be the live context of the program (not otherwise borrowed), `bufs`
/// its buffer table, and `body` the compiled body of that scan.
pub unsafe extern "C" fn kiln_scan(
    ctx: *mut CallContext,
    index: u64,
    bufs: *const *mut u8,
    body: EntryFn,
) -> u32 {
    // SAFETY: guaranteed by the caller. The state lives apart from the context, so
    // the body's calls may borrow the context while the loop holds its state.
    let state = unsafe { (&(*ctx).scans)[index as usize].0.as_ptr() };
    let result = catch_unwind(AssertUnwindSafe(|| unsafe {
        (*state).run(ctx, bufs, body)
    }));
    result.unwrap_or_else(|_| {
        // SAFETY: nothing borrows the context after the unwind.
        unsafe { (*ctx).error = Some("a `scan` loop panicked".into()) };
        1
    })
}
