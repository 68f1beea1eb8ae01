//! The ways the agent runs, and what each one means for the process: which
//! signals it handles, what a stop signal exits with, whether it tells a
//! service manager, whether it sends one beat or many. Each is a match
//! over every task, so a new task is a compile error until each question
//! has its answer (a forgotten one can no longer fall into the service
//! loop through a `_` arm).

use crate::signals::{self, Signal};
use crate::stop::OnStop;

/// What the process was started to do (besides printing help or its version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// No task flag: the long-running service.
    Service,
    /// `--once`: one beat, for cron.
    Once,
    /// `--check`: the settings, the server asked, the checks run once.
    Check,
    /// `run -- CMD`: the job wrapper.
    Run,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::Service, Task::Once, Task::Check, Task::Run];

    /// The word on the command line that asks for it.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Task::Service => None,
            Task::Once => Some("--once"),
            Task::Check => Some("--check"),
            Task::Run => Some("run"),
        }
    }

    /// The tasks it cannot be combined with: every other one with a flag.
    pub fn conflicts(self) -> Vec<&'static str> {
        Task::ALL
            .into_iter()
            .filter(|t| *t != self)
            .filter_map(Task::flag)
            .collect()
    }

    /// What SIGTERM/SIGINT exit with. The service was asked to stop: a
    /// clean stop. `--once` did not confirm its beat, and `--check` did
    /// not finish. `run` outside its job reports the signal as a shell
    /// would (while the job runs, the signal goes to the job instead).
    pub fn on_stop(self) -> OnStop {
        match self {
            Task::Service => OnStop::Exit(0),
            Task::Once | Task::Check => OnStop::Exit(1),
            Task::Run => OnStop::AsAShellWould,
        }
    }

    /// The signals it handles: `run` also passes SIGHUP to its job.
    pub fn signals(self) -> &'static [Signal] {
        match self {
            Task::Run => signals::FORWARD,
            Task::Service | Task::Once | Task::Check => signals::STOP,
        }
    }

    /// Tells systemd it is ready, alive and stopping (NOTIFY_SOCKET).
    pub fn notifies(self) -> bool {
        match self {
            Task::Service => true,
            Task::Once | Task::Check | Task::Run => false,
        }
    }

    /// Sends exactly one beat from a fresh process (no previous sample).
    pub fn one_beat(self) -> bool {
        match self {
            Task::Once | Task::Run => true,
            Task::Service | Task::Check => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_conflicts_with_every_other_flag() {
        assert_eq!(Task::Service.conflicts(), ["--once", "--check", "run"]);
        assert_eq!(Task::Once.conflicts(), ["--check", "run"]);
        assert!(Task::Once.one_beat() && Task::Run.one_beat());
        assert!(!Task::Service.one_beat() && !Task::Check.one_beat());
        assert!(
            Task::ALL
                .iter()
                .filter(|t| t.notifies())
                .eq([&Task::Service])
        );
    }
}
