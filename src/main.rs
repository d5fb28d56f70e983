fn main() -> std::process::ExitCode {
    edgehook::cli::main()
}
