//! The `plugboard` binary.

fn main() -> std::process::ExitCode {
    plugboard::cli::run()
}
