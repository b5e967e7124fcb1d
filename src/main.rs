/// The engines allocate and free many tensors of a few MB each step; glibc's malloc hands those back
/// to the kernel and page-faults them in again every time, which cost the CPU backend about 40 % of an
/// LSQML epoch. mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ptycho_wgpu::cli::main()
}
