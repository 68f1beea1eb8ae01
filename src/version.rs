//! What every part of the agent says about itself: its version and the
//! User-Agent it sends. A leaf: it uses nothing of the crate.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `stacksense-heartbeat/0.1.0 (linux; x86_64)`.
pub fn user_agent() -> String {
    format!(
        "stacksense-heartbeat/{VERSION} ({}; {})",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_version_os_and_arch() {
        let ua = user_agent();
        assert!(ua.starts_with(&format!("stacksense-heartbeat/{VERSION} (")));
        assert!(ua.contains(std::env::consts::ARCH));
    }
}
