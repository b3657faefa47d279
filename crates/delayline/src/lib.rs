//! A userspace packet delay line for pushbench's emulated networks (`scripts/netns.sh`).
//!
//! This kernel has no `sch_netem`, so delay is added in userspace: the router namespace routes
//! every forwarded packet out into a TUN device; the delay line reads each IP packet from it,
//! stamps it at read time, and writes it back into the same TUN once `delay` has passed, where
//! the kernel forwards it on to its destination. Semantics:
//!
//! - every packet of both directions is held for the same one-way `delay` (so a round trip
//!   through the router gains 2 × delay), measured from the moment it was read;
//! - FIFO: packets leave in the order they arrived, never reordered;
//! - a bounded queue: when `queue` packets are waiting, a new one is dropped and counted
//!   ([`Counters::dropped`]); nothing else is ever dropped by the delay line;
//! - the delay line's own cost (a read, a thread hand-off, a write) comes on top; measure it
//!   with `delay` 0 (scripts/netns.sh `up --rtt 0ms`).
//!
//! ```no_run
//! use std::time::Duration;
//! let tun = pushbench_delayline::open_tun("pbdelay")?;
//! let line = pushbench_delayline::DelayLine::new(Duration::from_millis(25), 65_536);
//! line.run(tun)?; // forwards until the device goes away
//! # Ok::<(), pushbench_delayline::DelayLineError>(())
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// The largest packet read from the device (a TUN without offloads hands over MTU-sized
/// packets; this leaves room for any MTU).
pub const MAX_PACKET: usize = 65_536;

/// What went wrong opening or running the delay line.
#[derive(Debug, thiserror::Error)]
pub enum DelayLineError {
    /// `/dev/net/tun` could not be opened.
    #[error(
        "cannot open /dev/net/tun ({source}); it needs root (CAP_NET_ADMIN) and the tun module"
    )]
    OpenTun {
        /// The underlying error.
        source: io::Error,
    },
    /// The device name does not fit an interface name.
    #[error("TUN device name `{0}`: expected 1 to 15 bytes without NUL")]
    BadName(String),
    /// TUNSETIFF failed (no such persistent device, or it belongs to another user).
    #[error(
        "cannot attach to TUN device `{name}` ({source}); create it first (`ip tuntap add dev {name} mode tun`)"
    )]
    Attach {
        /// The device name.
        name: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Reading from or writing to the device failed.
    #[error("TUN device I/O: {0}")]
    Io(#[from] io::Error),
}

/// Attaches to (or creates) the TUN device `name`: IP packets, no packet-information header.
pub fn open_tun(name: &str) -> Result<File, DelayLineError> {
    if name.is_empty() || name.len() > 15 || name.contains('\0') {
        return Err(DelayLineError::BadName(name.to_owned()));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|source| DelayLineError::OpenTun { source })?;
    // struct ifreq: 16 bytes of name, then a union whose first member is `short ifr_flags`;
    // 40 bytes in all on Linux.
    let mut ifreq = [0u8; 40];
    ifreq[..name.len()].copy_from_slice(name.as_bytes());
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    ifreq[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: `file` is an open /dev/net/tun descriptor and `ifreq` is a live, writable
    // buffer of the size of `struct ifreq`, which is what TUNSETIFF reads and writes.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, ifreq.as_mut_ptr()) };
    if rc < 0 {
        return Err(DelayLineError::Attach {
            name: name.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(file)
}

/// Packet counts, shared with whoever reports them (updated while the line runs).
#[derive(Debug, Default)]
pub struct Counters {
    /// Packets read from the device.
    pub received: AtomicU64,
    /// Packets written back after their delay.
    pub forwarded: AtomicU64,
    /// Packets dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Packets the device refused on write (counted, not retried).
    pub write_errors: AtomicU64,
    /// The most a packet was held past its due time, µs (the line's own lateness).
    pub max_late_us: AtomicU64,
    /// The sum of every packet's lateness past its due time, µs (mean = this / forwarded).
    pub total_late_us: AtomicU64,
}

impl Counters {
    /// One line for logs: `received R forwarded F dropped D write_errors E mean_late_us M
    /// max_late_us L`.
    pub fn summary(&self) -> String {
        let forwarded = self.forwarded.load(Ordering::Relaxed);
        let total_late = self.total_late_us.load(Ordering::Relaxed);
        format!(
            "received {} forwarded {forwarded} dropped {} write_errors {} mean_late_us {} max_late_us {}",
            self.received.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.write_errors.load(Ordering::Relaxed),
            total_late.checked_div(forwarded).unwrap_or(0),
            self.max_late_us.load(Ordering::Relaxed),
        )
    }
}

/// A fixed one-way delay with a bounded FIFO queue (see the crate docs for its semantics).
#[derive(Debug, Clone)]
pub struct DelayLine {
    delay: Duration,
    queue: usize,
    counters: Arc<Counters>,
}

impl DelayLine {
    /// A line holding each packet for `delay`, with at most `queue` packets waiting.
    pub fn new(delay: Duration, queue: usize) -> DelayLine {
        DelayLine {
            delay,
            queue: queue.max(1),
            counters: Arc::default(),
        }
    }

    /// The counters, to report while or after the line runs.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// Forwards packets from `tun` back into `tun` after the delay, until reading fails.
    /// A reader thread stamps and queues; a writer thread waits out each packet's delay.
    pub fn run(&self, tun: File) -> Result<(), DelayLineError> {
        let writer = tun.try_clone()?;
        self.forward(tun, writer)
    }

    /// The loop of [`DelayLine::run`] over any packet source and sink: each `read` returns one
    /// packet, each `write` sends one. Returns when `source` ends (0 bytes or an error).
    pub fn forward<R: Read, W: Write + Send>(
        &self,
        mut source: R,
        sink: W,
    ) -> Result<(), DelayLineError> {
        let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(self.queue);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| self.drain(rx, sink));
            let result = self.fill(&mut source, tx);
            // `fill` dropped its sender: the writer sends what is queued, then ends.
            let _ = writer.join();
            result
        })
    }

    fn fill<R: Read>(
        &self,
        source: &mut R,
        tx: SyncSender<(Instant, Vec<u8>)>,
    ) -> Result<(), DelayLineError> {
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            let stamp = Instant::now();
            self.counters.received.fetch_add(1, Ordering::Relaxed);
            match tx.try_send((stamp, buf[..n].to_vec())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => return Ok(()),
            }
        }
    }

    fn drain<W: Write>(&self, rx: Receiver<(Instant, Vec<u8>)>, mut sink: W) {
        // Every packet has the same delay, so due times rise with arrival order: FIFO is
        // also earliest-due-first, and one queue is enough.
        for (stamp, packet) in rx {
            let due = stamp + self.delay;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let late = Instant::now().saturating_duration_since(due).as_micros() as u64;
            self.counters.max_late_us.fetch_max(late, Ordering::Relaxed);
            self.counters
                .total_late_us
                .fetch_add(late, Ordering::Relaxed);
            // One write is one packet on a TUN device: a short write is a failed packet.
            match sink.write(&packet) {
                Ok(n) if n == packet.len() => {
                    self.counters.forwarded.fetch_add(1, Ordering::Relaxed)
                }
                _ => self.counters.write_errors.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc::{Sender, channel};

    /// Packets fed by the test, one per read; ends when the sender is dropped.
    struct Feed(Receiver<Vec<u8>>);

    impl Read for Feed {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.recv() {
                Ok(p) => {
                    buf[..p.len()].copy_from_slice(&p);
                    Ok(p.len())
                }
                Err(_) => Ok(0),
            }
        }
    }

    /// Records each written packet with the time it was written.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<Stamped>>>);

    type Stamped = (Instant, Vec<u8>);

    impl Write for Log {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push((Instant::now(), buf.to_vec()));
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn start(line: &DelayLine) -> (Sender<Vec<u8>>, Log, std::thread::JoinHandle<()>) {
        let (tx, rx) = channel();
        let log = Log::default();
        let sink = log.clone();
        let line = line.clone();
        let handle = std::thread::spawn(move || line.forward(Feed(rx), sink).unwrap());
        (tx, log, handle)
    }

    #[test]
    fn holds_every_packet_for_the_delay_and_keeps_their_order() {
        let delay = Duration::from_millis(30);
        let line = DelayLine::new(delay, 1024);
        let (tx, log, handle) = start(&line);
        let mut sent = Vec::new();
        for i in 0..50u32 {
            sent.push(Instant::now());
            tx.send(i.to_be_bytes().to_vec()).unwrap();
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        drop(tx);
        handle.join().unwrap();
        let log = log.0.lock().unwrap();
        assert_eq!(log.len(), 50);
        for (i, ((at, packet), sent_at)) in log.iter().zip(&sent).enumerate() {
            assert_eq!(packet, &(i as u32).to_be_bytes(), "packet {i} out of order");
            assert!(
                at.duration_since(*sent_at) >= delay,
                "packet {i} left after {:?}, before the {delay:?} delay",
                at.duration_since(*sent_at)
            );
        }
        let c = line.counters();
        assert_eq!(c.forwarded.load(Ordering::Relaxed), 50);
        assert_eq!(c.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking_the_reader() {
        // A long delay and a queue of 4: the reader must not wait for the writer.
        let line = DelayLine::new(Duration::from_millis(200), 4);
        let (tx, log, handle) = start(&line);
        let begin = Instant::now();
        for i in 0..20u8 {
            tx.send(vec![i]).unwrap();
        }
        // Every packet was read (counted) long before the first one was due.
        while line.counters().received.load(Ordering::Relaxed) < 20 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(begin.elapsed() < Duration::from_millis(150));
        drop(tx);
        handle.join().unwrap();
        let c = line.counters();
        let forwarded = c.forwarded.load(Ordering::Relaxed);
        let dropped = c.dropped.load(Ordering::Relaxed);
        assert_eq!(forwarded + dropped, 20, "{}", c.summary());
        // At most the queue plus the one packet the writer holds got through.
        assert!((4..=5).contains(&forwarded), "{}", c.summary());
        let log = log.0.lock().unwrap();
        assert_eq!(log.first().map(|p| p.1.clone()), Some(vec![0]));
    }

    #[test]
    fn rejects_a_name_too_long_for_an_interface() {
        let err = open_tun("a-name-longer-than-15").unwrap_err();
        assert!(err.to_string().contains("a-name-longer-than-15"), "{err}");
    }
}
