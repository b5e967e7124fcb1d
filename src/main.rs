fn main() -> std::process::ExitCode {
    ptycho_wgpu::cli::main()
}
