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
    fn a_busy_server_thread_is_charged_and_others_are_not() {
        // Spins until the server-thread reading has grown by 50 ms of CPU: on a loaded machine
        // that takes longer in wall time, but it must get there.
        let busy = std::thread::Builder::new()
            .name(format!("{SERVER_THREADS}-test"))
            .spawn(|| {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                let mut x = 0u64;
                loop {
                    for _ in 0..100_000 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                    let seconds = thread_cpu_seconds(Threads::Server).unwrap();
                    if seconds >= 0.05 || std::time::Instant::now() > deadline {
                        return seconds;
                    }
                }
            })
            .unwrap();
        let server_before_spin_ended = busy.join().unwrap();
        assert!(
            server_before_spin_ended >= 0.05,
            "{server_before_spin_ended}"
        );
        // The server thread has ended: nothing named like the server is left to charge.
        assert_eq!(thread_cpu_seconds(Threads::Server), Some(0.0));
        assert!(
            thread_cpu_seconds(Threads::Client).unwrap() > 0.0,
            "this test's own thread counts as client"
        );
    }
}
