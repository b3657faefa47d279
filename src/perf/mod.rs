//! Performance targets of issue 6 measured against `pushbench serve` run as a child process:
//! the server's memory per idle connection ([`memory`]) and broadcast fan-out to 19 000 clients
//! ([`scale`]).

pub mod memory;
pub mod scale;

pub use memory::{IdleMemory, PerfTransport, idle_memory};
pub use scale::{Scale, scale};
