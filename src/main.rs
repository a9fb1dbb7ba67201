//! The `mnv1` binary: the library's command line (`mnv1::main`).

fn main() -> std::process::ExitCode {
    mnv1::main()
}
