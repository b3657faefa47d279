//! CPU time of the harness's own threads, read from `/proc/self/task`, so a result can state
//! what the server and the clients each spent.

use std::fs;

/// Thread name prefix of the server runtime (Linux keeps 15 bytes of a thread's name).
pub const SERVER_THREADS: &str = "pushbench-serv";

/// Which of the process's threads to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The server runtime's threads.
    Server,
    /// Every other thread: the client runtime, and the thread that drives it (`block_on`).
    Client,
}

/// CPU seconds run so far by `threads`, from each thread's `schedstat` (nanoseconds on the
/// CPU, so short cases are measured, not sampled); `None` where `/proc` is not readable.
pub fn thread_cpu_seconds(threads: Threads) -> Option<f64> {
    let mut nanos = 0u64;
    for task in fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let Ok(comm) = fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if comm.trim_end().starts_with(SERVER_THREADS) != (threads == Threads::Server) {
            continue;
        }
        let Ok(schedstat) = fs::read_to_string(path.join("schedstat")) else {
            continue;
        };
        nanos += schedstat
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(nanos as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_named_thread_is_charged() {
        let busy = std::thread::Builder::new()
            .name(format!("{SERVER_THREADS}-test"))
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed().as_millis() < 300 {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                std::hint::black_box(x);
                thread_cpu_seconds(Threads::Server)
            })
            .unwrap();
        let seconds = busy.join().unwrap().unwrap();
        assert!(seconds >= 0.25, "the busy thread ran 0.3 s: {seconds}");
        // This test's own thread is not a server thread.
        assert!(thread_cpu_seconds(Threads::Client).unwrap() > 0.0);
    }
}
