//! Performance targets of issue 6 measured against `pushbench serve` run as a child process:
//! the server's memory per idle connection ([`memory`]).

pub mod memory;

pub use memory::{IdleMemory, PerfTransport, idle_memory};
