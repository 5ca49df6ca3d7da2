#[derive(clap::Args, Debug)]
pub struct Options {}
pub fn run_vm_test(_o: Options) -> anyhow::Result<u8> { anyhow::bail!("todo") }
