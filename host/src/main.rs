fn main() -> std::process::ExitCode {
    commerce::cli::main()
}
