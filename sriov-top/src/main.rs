//! `sriov-top`: the terminal UI. Not built yet: this binary only points to
//! the `sriov` CLI so that nothing pretends to work.
use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "sriov-top: the terminal UI is not part of this build yet; use `sriov list` / `sriov show` for now"
    );
    ExitCode::from(1)
}
