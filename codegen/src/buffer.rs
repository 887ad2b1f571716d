//! 64-byte aligned, zero-initialized byte buffers.

use std::alloc::{Layout, alloc_zeroed, dealloc};

use kiln_ir::kernel::ALIGN;

/// An owned, 64-byte aligned, zeroed block of memory.
pub struct AlignedBuffer {
    /// The aligned start, inside the allocation.
    ptr: *mut u8,
    len: usize,
    /// The allocation itself.
    base: *mut u8,
    layout: Layout,
}

impl AlignedBuffer {
    /// `bytes` zeroed bytes (at least one allocation unit, so the pointer is always
    /// valid); aborts if the allocator refuses (see [`AlignedBuffer::try_zeroed`]).
    pub fn zeroed(bytes: usize) -> Self {
        Self::try_zeroed(bytes).unwrap_or_else(|| {
            std::alloc::handle_alloc_error(
                Layout::from_size_align(bytes.max(ALIGN), ALIGN).expect("valid layout"),
            )
        })
    }

    /// `bytes` zeroed bytes, or `None` if the size is not addressable or the
    /// allocator refuses.
    pub fn try_zeroed(bytes: usize) -> Option<Self> {
        let len = bytes.max(ALIGN);
        // Allocated with the allocator's natural alignment and aligned here: an
        // over-aligned zeroed allocation is zeroed by hand, page by page, while this
        // one comes zeroed from the system (a large arena costs nothing until it is
        // touched, so compiling a long loop does not clear its whole arena).
        let layout = Layout::from_size_align(len.checked_add(ALIGN)?, 16).ok()?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            return None;
        }
        let ptr = base.wrapping_add(base.align_offset(ALIGN));
        Some(AlignedBuffer {
            ptr,
            len,
            base,
            layout,
        })
    }

    /// A copy of `bytes`; aborts if the allocator refuses.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let b = Self::zeroed(bytes.len());
        b.copy_in(bytes);
        b
    }

    /// A copy of `bytes`, or `None` if the allocator refuses.
    pub fn try_from_bytes(bytes: &[u8]) -> Option<Self> {
        let b = Self::try_zeroed(bytes.len())?;
        b.copy_in(bytes);
        Some(b)
    }

    fn copy_in(&self, bytes: &[u8]) {
        // SAFETY: the buffer holds at least `bytes.len()` bytes and does not overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr, bytes.len()) };
    }

    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `try_zeroed` with this layout.
        unsafe { dealloc(self.base, self.layout) };
    }
}

// SAFETY: the buffer owns its memory exclusively; no interior aliasing.
unsafe impl Send for AlignedBuffer {}
