//! What std and wasi-libc would otherwise provide inside a component. Policies
//! are `no_std` because std on wasm32-wasip2 imports WASI (its panic hook
//! writes to stderr and reads the environment), and the host provides none.

use core::alloc::Layout;
use core::sync::atomic::{AtomicBool, Ordering};

/// dlmalloc is std's allocator on wasm32; it grows linear memory with
/// `memory.grow`, so the host's memory limit turns exhaustion into a trap.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

static PANICKED: AtomicBool = AtomicBool::new(false);

/// What a component's panic handler does (the export macro defines the
/// handler, so that it logs through the contract version the component
/// exports): log the panic through the host once, then trap. The host answers
/// `POLICY_UNAVAILABLE` and the policy's state dies with its store.
pub fn on_panic(info: &core::panic::PanicInfo<'_>, log: impl FnOnce(&str)) -> ! {
    // Formatting allocates. If the allocation fails, the second panic must not
    // try again, or an out-of-memory panic would recurse until the stack ends.
    if !PANICKED.swap(true, Ordering::Relaxed) {
        log(&alloc::format!("panic: {info}"));
    }
    core::arch::wasm32::unreachable()
}

/// The canonical ABI's allocator: the host calls it to place string and list
/// arguments in guest memory, and the bindings later free them with Rust's
/// allocator, so it must be Rust's allocator. wit-bindgen ships this export
/// for wasip1 only (on wasip2 it expects wasi-libc's, which std brings), so a
/// `no_std` component supplies its own. This mirrors `wit_bindgen::rt::cabi_realloc`.
#[allow(unsafe_code)]
#[unsafe(export_name = "cabi_realloc")]
unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if new_len == 0 {
        // A zero-sized allocation needs no memory, only a well-aligned pointer.
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(new_len, align) else {
        core::arch::wasm32::unreachable()
    };
    // SAFETY: the canonical ABI passes either `old_len == 0` (a fresh
    // allocation) or a pointer this function returned earlier for `old_len`
    // bytes with the same `align`; `layout` checked that `new_len` is valid.
    let ptr = unsafe {
        if old_len == 0 {
            alloc::alloc::alloc(layout)
        } else {
            let old = Layout::from_size_align_unchecked(old_len, align);
            alloc::alloc::realloc(old_ptr, old, new_len)
        }
    };
    if ptr.is_null() {
        // Out of memory within the host's limit: trap rather than return null.
        core::arch::wasm32::unreachable()
    }
    ptr
}

// The memory functions ordinary `core` code calls. On `wasm32-wasip2` they
// come from wasi-libc, which a `no_std` component does not link: comparing
// two strings (`==` on `str`, `split`, `sort`, map lookups) makes rustc call
// `memcmp`/`bcmp`, and the component would import them from a module named
// `env` that no host provides. (`memcpy`, `memmove` and `memset` are
// provided by `compiler_builtins`.) Byte loops: policies compare short keys.

/// `memcmp`: the sign of the first differing byte, or 0.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(left: *const u8, right: *const u8, len: usize) -> i32 {
    for i in 0..len {
        // SAFETY: the caller passes two readable ranges of `len` bytes.
        let (a, b) = unsafe { (*left.add(i), *right.add(i)) };
        if a != b {
            return i32::from(a) - i32::from(b);
        }
    }
    0
}

/// `bcmp`: 0 when the ranges are equal; what LLVM calls for `==`.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(left: *const u8, right: *const u8, len: usize) -> i32 {
    // SAFETY: the same ranges, passed on.
    unsafe { memcmp(left, right, len) }
}
