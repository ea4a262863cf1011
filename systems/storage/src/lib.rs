//! File-backed durable storage for the reference systems: the real-disk implementation of
//! the `machine` contract's `Write`/`DiskOp`/`Durable`, used by the node driver.
//!
//! [`Store::open`] reads a directory back into a [`machine::Durable`] (cutting and
//! reporting a torn log tail, refusing any other damage) and [`Store::write`] carries out
//! writes with `Durable::apply` semantics, durable before it returns. Logs are segment
//! files of crc32c-framed records; blobs are checksummed files replaced by rename.
//!
//! On disk, under the store's directory (all integers little-endian):
//! - `logs/<name>/meta`: a sealed file (see `sealed`) holding the log's first position.
//! - `logs/<name>/<first position, 20 digits>.seg`: a 24-byte [`segment`] header, then
//!   [`record`] frames `len u32 | crc32c(position, len, payload) u32 | payload`.
//! - `blobs/<name>`: a sealed file, `magic | version | kind | len | crc32c | payload`.
//! - `.<name>.tmp`: something being written before its atomic rename; removed on open.
//!
//! Recovery cuts a bad tail of a log's last segment (a write that never completed) and
//! reports it; a bad frame in an earlier segment, a bad header, blob or meta file, a gap
//! between segments or an unknown file is an error naming the file: the node must not boot.

mod blob;
mod disk;
mod error;
mod fsutil;
mod limits;
mod log;
pub mod record;
mod report;
mod sealed;
pub mod segment;
mod store;

pub use error::{Result, StorageError};
pub use fsutil::Stats;
pub use limits::Limits;
pub use report::{RecoveryReport, TornTail};
pub use store::Store;
