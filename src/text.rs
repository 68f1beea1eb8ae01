//! How text from outside the process (library errors, for now) is put into
//! a message.

use std::io;

/// The io error without Rust's "(os error N)" tail.
pub fn describe_io(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" (os error") {
        Some((head, _)) => head.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_error_number_is_dropped() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe_io(&e), "No such file or directory");
        assert_eq!(
            describe_io(&io::Error::other("is a directory")),
            "is a directory"
        );
    }
}
