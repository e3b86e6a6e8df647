//! An event's compact JSON, measured (the per-event size limit) and hashed (a synthesized
//! `messageId`) as it is written out, without building the text.

use std::io::{self, Write};

use ring::digest;
use serde_json::{Map, Value};

/// The length of the compact JSON of `map`, without building it.
pub(super) fn compact_len(map: &Map<String, Value>) -> usize {
    let mut counter = CountWriter(0);
    write_json(&mut counter, map);
    counter.0
}

/// The SHA-256 of the compact JSON of `map`, without building it.
pub(super) fn compact_sha256(map: &Map<String, Value>) -> digest::Digest {
    let mut hasher = Sha256Writer(digest::Context::new(&digest::SHA256));
    write_json(&mut hasher, map);
    hasher.0.finish()
}

fn write_json<W: Write>(writer: W, map: &Map<String, Value>) {
    // Neither writer fails, and a `serde_json::Value` (string keys, finite numbers) always
    // serializes, so there is no error to report.
    let written = serde_json::to_writer(writer, map);
    debug_assert!(written.is_ok());
}

/// Counts the bytes written to it.
struct CountWriter(usize);

impl Write for CountWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Feeds the bytes written to it into a SHA-256.
struct Sha256Writer(digest::Context);

impl Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
