//! The `erlnode` command: thin; see [`erlnode::cli`].

fn main() -> std::process::ExitCode {
    erlnode::cli::run()
}
