//! pushbench's Server-Sent Events driver: an incremental, spec-correct `text/event-stream`
//! parser ([`SseParser`]) and the [`SseDriver`], which holds `GET /sse` open and sends each
//! call as `POST /rpc`.
//!
//! ```no_run
//! # async fn demo(target: pushbench_core::Target) -> Result<(), pushbench_core::DriverError> {
//! use pushbench_core::Driver;
//! let mut session = pushbench_driver_sse::SseDriver.connect(&target).await?;
//! session.send(br#"{"seq":0,"blockSize":10}"#).await?;
//! let reply = session.recv().await?;
//! # Ok(()) }
//! ```

mod feed;
mod h2;
pub mod parser;
mod session;

pub use h2::SseHttp2Driver;
pub use parser::{MAX_EVENT_BYTES, SseError, SseEvent, SseEventRef, SseParser};
pub use session::SseDriver;
