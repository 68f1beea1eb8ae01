//! THE list of the agent API's pushes, and the endpoints a beat goes to.
//!
//! A push is a POST to `/api/agent/<word>/` that the server also records
//! as a heartbeat, so it goes in place of one. Adding a push is one entry
//! below (its word, the setting it goes by, how its cadence starts), one collector
//! (`push::collector_for`, a match the compiler holds complete) and the
//! word's mention in the `report` setting's help. Everything kept per
//! push ([`PerPush`]) is an array as long as this list, indexed by the
//! variant itself: no index can run past it.

use std::ops::{Index, IndexMut};

macro_rules! push_table {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $word:literal, every: $every:ident,
            sampled: $sampled:literal, follows_checks: $follows:literal;
    )+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Push {
            $($(#[$doc])* $variant,)+
        }

        impl Push {
            /// Every push, in the order a beat sends them.
            pub const ALL: [Push; [$($word),+].len()] = [$(Push::$variant),+];

            /// Its word in the `report` setting and its path under `/api/agent/`.
            pub fn word(self) -> &'static str {
                match self {
                    $(Push::$variant => $word,)+
                }
            }

            /// As log lines name it.
            pub fn words(self) -> &'static str {
                match self {
                    $(Push::$variant => concat!($word, " push"),)+
                }
            }

            /// Measured from one sample to the next: the first push waits
            /// for the first beat after beat zero, and a one-beat mode
            /// (`--once`, `run`) cannot send it.
            pub fn sampled(self) -> bool {
                match self {
                    $(Push::$variant => $sampled,)+
                }
            }

            /// The setting that says how often it goes.
            pub fn every(self) -> Every {
                match self {
                    $(Push::$variant => Every::$every,)+
                }
            }

            /// Goes again as soon as a check's verdict changes.
            pub fn follows_checks(self) -> bool {
                match self {
                    $(Push::$variant => $follows,)+
                }
            }
        }
    };
}

push_table! {
    /// `POST /api/agent/metrics/`: CPU, memory, disks, network, uptime.
    Metrics = "metrics", every: MetricsInterval,
        sampled: true, follows_checks: false;
    /// `POST /api/agent/services/`: the running services, listening ports
    /// and health checks.
    Services = "services", every: ServicesInterval,
        sampled: false, follows_checks: true;
    /// `POST /api/agent/containers/`: Docker's or Podman's containers.
    Containers = "containers", every: ServicesInterval,
        sampled: false, follows_checks: false;
}

impl Push {
    pub const COUNT: usize = Push::ALL.len();

    pub fn from_word(word: &str) -> Option<Push> {
        Push::ALL.into_iter().find(|p| p.word() == word)
    }

    /// Its position in [`Push::ALL`].
    fn index(self) -> usize {
        self as usize
    }
}

/// The settings a push's interval comes from (the server's own agent has
/// these two cadences: metrics, and services with containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    MetricsInterval,
    ServicesInterval,
}

impl Every {
    pub const ALL: [Every; 2] = [Every::MetricsInterval, Every::ServicesInterval];
}

/// One `T` per push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PerPush<T>([T; Push::COUNT]);

impl PerPush<bool> {
    /// Every push off.
    pub const NONE: PerPush<bool> = PerPush([false; Push::COUNT]);
}

impl<T> PerPush<T> {
    pub fn from_fn(mut f: impl FnMut(Push) -> T) -> PerPush<T> {
        PerPush(std::array::from_fn(|i| f(Push::ALL[i])))
    }

    /// Each push with its value, in [`Push::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Push, &T)> {
        Push::ALL.into_iter().zip(self.0.iter())
    }
}

impl PerPush<bool> {
    /// The pushes that are on.
    pub fn on(&self) -> impl Iterator<Item = Push> + '_ {
        self.iter().filter(|(_, on)| **on).map(|(p, _)| p)
    }

    pub fn any(&self) -> bool {
        self.0.contains(&true)
    }
}

impl<T> Index<Push> for PerPush<T> {
    type Output = T;
    fn index(&self, push: Push) -> &T {
        &self.0[push.index()]
    }
}

impl<T> IndexMut<Push> for PerPush<T> {
    fn index_mut(&mut self, push: Push) -> &mut T {
        &mut self.0[push.index()]
    }
}

/// Where one request of a beat goes: the heartbeat, or a push that the
/// server also records as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Heartbeat,
    Push(Push),
}

impl Endpoint {
    /// As log lines name it.
    pub fn words(self) -> &'static str {
        match self {
            Endpoint::Heartbeat => "heartbeat",
            Endpoint::Push(push) => push.words(),
        }
    }

    pub fn push(self) -> Option<Push> {
        match self {
            Endpoint::Heartbeat => None,
            Endpoint::Push(push) => Some(push),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_push_has_its_own_word_and_slot() {
        for (i, push) in Push::ALL.into_iter().enumerate() {
            assert_eq!(push.index(), i);
            assert_eq!(Push::from_word(push.word()), Some(push));
            assert_eq!(push.words(), format!("{} push", push.word()));
        }
        assert_eq!(Push::from_word("heartbeat"), None);
        let mut seen = PerPush::<u32>::default();
        for push in Push::ALL {
            seen[push] += 1;
        }
        assert!(seen.iter().all(|(_, n)| *n == 1));
    }
}
