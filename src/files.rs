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
    // Room for most /proc and /sys files at once: with none, the first
    // reads would be 32-byte probes (about eight system calls a file).
    let mut bytes = Vec::with_capacity(4096);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::other(
            "larger than 1 MiB; is this the right file?",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        io::Error::new(io::ErrorKind::InvalidData, not_utf8(e.as_bytes(), at))
    })
}

/// Where and why `bytes` stop being UTF-8, as a person fixes it: a UTF-16
/// file (Windows editors save one), or the line and column of the first
/// byte that is not UTF-8 (a Latin-1 or Windows-1252 file).
fn not_utf8(bytes: &[u8], at: usize) -> String {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return "is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8".into();
    }
    let before = String::from_utf8_lossy(bytes.get(..at).unwrap_or_default());
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let byte = bytes.get(at).copied().unwrap_or(0);
    format!(
        "line {line}, column {column}: byte 0x{byte:02X} is not UTF-8 (a Latin-1 or \
         Windows-1252 file?); save it as UTF-8"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_utf8_is_refused_with_where_and_why() {
        let dir = std::env::temp_dir().join(format!("files-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let latin1 = dir.join("latin1.conf");
        std::fs::write(&latin1, b"{\n  \"api_url\": \"http://caf\xE9\"\n}\n").unwrap();
        let err = read_small_file(&latin1).unwrap_err().to_string();
        assert_eq!(
            err,
            "line 2, column 25: byte 0xE9 is not UTF-8 (a Latin-1 or Windows-1252 file?); \
             save it as UTF-8"
        );
        let utf16 = dir.join("utf16.conf");
        std::fs::write(&utf16, b"\xFF\xFE{\0}\0").unwrap();
        let err = read_small_file(&utf16).unwrap_err().to_string();
        assert!(err.starts_with("is UTF-16"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
