/// A request allocates and frees many small buffers on several threads,
/// where mimalloc spends less than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    commerce::cli::main()
}
