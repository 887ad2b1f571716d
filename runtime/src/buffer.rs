//! 64-byte aligned, zero-initialized byte buffers.

use std::alloc::{Layout, alloc_zeroed, dealloc};

/// Alignment of every runtime buffer: the kernel program's arena alignment (a
/// cache line, and enough for any vector load).
pub use kiln_ir::kernel::ALIGN;

/// An owned, 64-byte aligned, zeroed block of memory.
pub struct AlignedBuffer {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBuffer {
    /// `bytes` zeroed bytes (at least one allocation unit, so the pointer is always
    /// valid).
    pub fn zeroed(bytes: usize) -> Self {
        let layout = Layout::from_size_align(bytes.max(ALIGN), ALIGN).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        AlignedBuffer { ptr, layout }
    }

    /// A copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let b = Self::zeroed(bytes.len());
        // SAFETY: the buffer holds at least `bytes.len()` bytes and does not overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), b.ptr, bytes.len()) };
        b
    }

    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

// SAFETY: the buffer owns its memory exclusively; no interior aliasing.
unsafe impl Send for AlignedBuffer {}
