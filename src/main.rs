/// The engines allocate and free many tensors of a few MB each step; glibc's malloc hands those back
/// to the kernel and page-faults them in again every time, which cost the CPU backend about 40 % of an
/// LSQML epoch. mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same place in the option enums of its v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // By default mimalloc gives freed memory back to the kernel after 10 ms, and a training step
    // then page-faults its tensors in again (9 % of a CPU step in `perf`, the kernel zeroing pages).
    // Keeping it: +6 % training and +3 % inference samples/s, measured alternately
    // (bench/results/cpu_speed). MIMALLOC_PURGE_DELAY, when set, still decides.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide allocator option, before any thread is started.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    ptycho_wgpu::cli::main()
}
