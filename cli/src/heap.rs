//! Allocator settings for long-running servers. glibc's malloc raises its mmap threshold after large
//! buffers are freed and keeps up to 8 arenas per core, so a server whose threads pass multi-MiB buffers
//! around grows its resident memory per client far beyond what it holds (measured: 67 MiB per extra client
//! with the defaults, 25 MiB with these settings; `benches/server_memory.sh`).

/// Buffers of 4 MiB or more are mapped on allocation and returned to the system when freed (a fixed
/// threshold, so glibc no longer raises it); at most 4 arenas. Fixing the mmap threshold also pins glibc's
/// trim threshold at its 128 KiB default, which hands the top of a heap back to the kernel after nearly
/// every freed chunk buffer and faults it in again for the next one (11 % of the server's CPU in `perf`
/// during a backup): up to 4 MiB per arena (twice the largest chunk) stays mapped instead, a fixed amount
/// whatever the number of clients. (16 MiB saved no more CPU and measured 28-36 MiB per extra client in
/// `benches/server_memory.sh`; 4 MiB measured 25-26.) Only for `server start`: one-shot commands keep glibc's defaults, which reuse large buffers
/// without page faults.
pub fn bound_for_server() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before the server starts its threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
    }
}
