//! Hands memory the operator no longer needs back to the system: freed heap, and read pages of the binary.
//!
//! glibc keeps what a thread frees in that thread's arena, for it to reuse, and gives pages back
//! only from the top of a heap. Two kinds of work free a lot at once and leave holes below
//! what stays: Cranelift compiling a component (tens of MiB, on the threads of wasmtime's
//! parallel compilation; a cold compile cache at start kept the operator about 100 MiB larger
//! for good, 182 MiB peak at 1 010 Pods against 86 MiB with the cache warm), and reconciles of
//! large clusters, each building its children as JSON values next to the long-lived cache
//! entries the watch adds meanwhile. `malloc_trim` returns the whole free pages of every arena.

use std::time::Duration;

/// Returns the allocator's whole free pages to the system (glibc); elsewhere a no-op.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers; it locks and walks glibc's own arenas, and is
    // safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes every thread allocate from one glibc arena, unless `MALLOC_ARENA_MAX` says otherwise.
/// Call it before any thread starts.
///
/// glibc gives threads arenas of their own so they do not contend for one lock; the operator's
/// threads (two tokio workers, the blocking pool running guests) then each keep their own free
/// memory, which the others cannot reuse. With one arena a 30 × 100 run peaked at 76.5 MiB
/// instead of 86.4 MiB, at the same CPU per Pod; at 10 100 Pods, where the heap is mostly live
/// data, the difference was within run-to-run noise (BENCHMARKS.md).
pub(crate) fn use_one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` takes two integers and sets a glibc malloc parameter; called before
        // other threads exist, as glibc advises for M_ARENA_MAX.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Drops this process's resident pages of `bytes`, read-only data of the binary itself (the
/// built-in components it embeds), after they have been read: the next read, if any, pages
/// them in again from the binary. The built-ins are about 12 MiB the operator reads once, to
/// digest and load them, and then kept resident for nothing. Only whole pages inside `bytes`
/// are dropped, so no other data shares them.
pub(crate) fn release_read_pages(bytes: &'static [u8]) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sysconf` takes a constant and reads a system setting.
        #[allow(unsafe_code)]
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0).max(1);
        let start = (bytes.as_ptr() as usize).next_multiple_of(page);
        let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
        if end > start {
            // SAFETY: [start, end) is whole pages inside a `&'static [u8]` of the binary's
            // read-only data, which is never written: for such a private file mapping,
            // MADV_DONTNEED only drops the pages from memory, and a later read gets the same
            // bytes from the file. No reference is invalidated and no data changes.
            #[allow(unsafe_code)]
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
}

/// The allocator's bytes in use and held free, over all arenas (glibc); `None` elsewhere.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn arena_bytes() -> Option<(usize, usize)> {
    // SAFETY: `mallinfo2` takes no arguments and returns a plain struct by value; it reads
    // glibc's own arena statistics under their locks.
    #[allow(unsafe_code)]
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks, info.fordblks))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn arena_bytes() -> Option<(usize, usize)> {
    None
}

/// How far the arenas' bytes in use plus held free must have moved since the last trim before
/// [`release_while_running`] trims again: an idle operator's heap barely moves, and a trim
/// then would only cost a walk of every arena.
const TRIM_AFTER_MOVING: usize = 4 << 20;

/// Whether the heap's (bytes in use, bytes held free) moved by more than [`TRIM_AFTER_MOVING`]
/// from `last` to `now`: work that freed memory, or took it back after the last trim.
fn moved_enough(last: (usize, usize), now: (usize, usize)) -> bool {
    now.0.abs_diff(last.0) + now.1.abs_diff(last.1) > TRIM_AFTER_MOVING
}

/// Every `every`, returns the arenas' free pages if the heap moved by more than
/// [`TRIM_AFTER_MOVING`] since the last trim; runs until the runtime stops. The trim runs on
/// the blocking pool: it locks each arena while it walks it.
pub(crate) async fn release_while_running(every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut after_last = (0, 0);
    loop {
        tick.tick().await;
        let Some((used, free)) = arena_bytes() else { return };
        if moved_enough(after_last, (used, free)) {
            let _ = tokio::task::spawn_blocking(release_freed_memory).await;
            after_last = arena_bytes().unwrap_or((used, free));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read-only data of the test binary spanning several whole pages, as the built-ins do.
    static PAGES: [u8; 5 * 4096 + 123] = {
        let mut bytes = [0u8; 5 * 4096 + 123];
        let mut i = 0;
        while i < bytes.len() {
            bytes[i] = (i % 251) as u8;
            i += 1;
        }
        bytes
    };

    #[test]
    fn data_whose_pages_were_dropped_reads_the_same_afterwards() {
        let before: Vec<u8> = PAGES.to_vec();
        release_read_pages(&PAGES);
        assert_eq!(PAGES.as_slice(), before.as_slice());
        release_read_pages(&PAGES[1..10]);
        assert_eq!(PAGES.as_slice(), before.as_slice());
    }

    #[test]
    fn an_idle_heap_is_not_trimmed_and_one_that_moved_is() {
        const MIB: usize = 1 << 20;
        let after_trim = (60 * MIB, 2 * MIB);
        assert!(!moved_enough(after_trim, (60 * MIB + 100_000, 2 * MIB - 100_000)), "idle: a few allocations");
        assert!(moved_enough(after_trim, (50 * MIB, 12 * MIB)), "a reconcile freed 10 MiB");
        assert!(moved_enough(after_trim, (66 * MIB, 2 * MIB)), "the cache grew by 6 MiB");
    }
}
