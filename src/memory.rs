//! Process memory settings: no transparent huge pages.
//!
//! mimalloc asks for transparent huge pages on its arenas, so every fresh 2 MiB region is
//! zeroed whole by the kernel on first touch. For a command that lives a second and grows to
//! tens of MB (10,000 replies) that zeroing was over 40% of the client's CPU
//! (`perf record -e cpu-clock`: `clear_page_erms` under `do_huge_pmd_anonymous_page`) and a
//! third of its RSS. Regular 4 KiB pages are zeroed only where touched.

/// Turns transparent huge pages off for this process (and the processes it starts), as
/// `MIMALLOC_ALLOW_THP=0` would. Takes effect at the next page fault, so calling it first
/// thing in `main` covers what mimalloc has only reserved so far.
pub fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours; on a
    // kernel without it the call fails harmlessly.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
