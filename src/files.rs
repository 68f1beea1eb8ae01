//! Reading the small files the agent needs (config, token, CA, /proc)
//! without being stalled or flooded by a wrong path.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Token, CA and config files are small; refusing big ones keeps a wrong
/// path (say, a log file) from being read into memory.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a config, token, CA or /proc file. Opened non-blocking and refused
/// unless it is a regular file: a FIFO would hang open(2) and read(2)
/// forever, a device could be endless.
pub fn read_small_file(path: &Path) -> io::Result<String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_dir() {
        return Err(io::Error::other("is a directory"));
    }
    if !kind.is_file() {
        return Err(io::Error::other(
            "is not a regular file (a FIFO, socket or device?); name a regular file",
        ));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::other(
            "larger than 1 MiB; is this the right file?",
        ));
    }
    Ok(text)
}
