//! The `wasmray` command line: the operator, its local control plane and its plugin tools.

use clap::Parser;

// mimalloc returns freed pages to the system within milliseconds; glibc's malloc kept most of
// the operator's peak RSS (95 of 140 MiB at 1 010 Pods) in per-thread arenas it never gave back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    wasmray::cli::Cli::parse().run()
}
