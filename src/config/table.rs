//! The one table of settings. Each entry is a whole setting: its flag,
//! environment variable, file key, default and help line (the [`Spec`] of
//! keys.rs), then after `=>` the field of [`Settings`] it fills with which
//! [`Picking`] rule, and how `--check` shows it (a function
//! of describe.rs). Adding a setting is adding an entry here, a row to the
//! README's table (a test holds the two together) and its test.
//!
//! The table is a macro so that each layer takes its own columns without
//! an import circle: keys.rs makes [`Key`] and the specs from it (every
//! module of config/ names settings by Key), resolve.rs the [`Settings`]
//! struct and its picking, describe.rs the `--check` rows. The token and
//! its file have no field: they are one setting given two ways, picked
//! together and read from disk in credentials.rs.
//!
//! [`Spec`]: super::keys::Spec
//! [`Key`]: super::keys::Key
//! [`Settings`]: super::resolve::Settings
//! [`Picking`]: super::resolve::Picking

/// Calls `$then!` with every entry, in the order of `--help`, `--check`
/// and the error list.
// rustfmt would re-indent the help texts' continuation lines.
#[rustfmt::skip]
macro_rules! settings_table {
    ($then:ident) => {
        $then! {
        ApiUrl {
            name: "api_url",
            env: "STACKSENSE_API_URL",
            aliases: &["STACKSENSE_URL", "url"],
            flag: Flag::Value("--api-url", "URL"),
            kind: Kind::Text,
            default: "(required)",
            help: "The StackSense server's base URL, http:// or https://, may carry a\n\
           path prefix. Also read from STACKSENSE_URL (the server's own agent's).",
        }
        => fills api_url: Setting<String> = api_url(), shown value;

        Token {
            name: "token",
            env: "STACKSENSE_TOKEN",
            aliases: &[],
            flag: Flag::None,
            kind: Kind::Text,
            default: "(none)",
            help: "The agent token from `python manage.py create_agent_token <server>`,\n\
           sent as \"Authorization: Bearer ...\"; never logged, never passed\n\
           to checks or jobs. No --token flag: a flag would show in `ps`.",
        }
        => shown token;

        TokenFile {
            name: "token_file",
            env: "STACKSENSE_TOKEN_FILE",
            aliases: &[],
            flag: Flag::Value("--token-file", "PATH"),
            kind: Kind::Text,
            default: "(none)",
            help: "A file holding the token. Under systemd a credential named\n\
           \"token\" (LoadCredential=token:PATH) is used unless a flag or\n\
           an environment variable sets one (it wins over the config file).",
        }
        => shown nothing;

        Api {
            name: "api",
            env: "STACKSENSE_API",
            aliases: &[],
            flag: Flag::Value("--api", "API"),
            kind: Kind::Text,
            default: "auto",
            help: "agent: POST /api/agent/heartbeat/ with the token (what StackSense\n\
           accepts); legacy: POST /api/heartbeat/<server_id>/. auto: legacy\n\
           when server_id is set, else agent.",
        }
        => fills api: Setting<api::Choice> = or_default(api::Choice::Auto, api::parse), shown api;

        ServerId {
            name: "server_id",
            env: "STACKSENSE_SERVER_ID",
            aliases: &[],
            flag: Flag::Value("--server-id", "ID"),
            kind: Kind::Id,
            default: "(none)",
            help: "Legacy API only: the server's id, 1-64 characters of A-Z a-z 0-9 . _ -\n\
           (StackSense routes only numbers); a number in the file is fine.",
        }
        => fills server_id: Option<Setting<String>> = optional(value::server_id), shown value;

        Interval {
            name: "interval",
            env: "STACKSENSE_INTERVAL",
            aliases: &[],
            flag: Flag::Value("--interval", "SECS"),
            kind: Kind::Seconds {
                min: 0.1,
                max: 86_400.0,
            },
            default: "30",
            help: "Seconds between beats, 0.1 to 86400.",
        }
        => fills interval: Setting<Duration> = seconds(DEFAULT_INTERVAL), shown value;

        Timeout {
            name: "timeout",
            env: "STACKSENSE_TIMEOUT",
            aliases: &[],
            flag: Flag::Value("--timeout", "SECS"),
            kind: Kind::Seconds {
                min: 0.1,
                max: 3_600.0,
            },
            default: "10",
            help: "Limit for one attempt: DNS + connect + TLS + response, 0.1 to 3600.",
        }
        => fills timeout: Setting<Duration> = seconds(DEFAULT_TIMEOUT), shown value;

        CaFile {
            name: "ca_file",
            env: "STACKSENSE_CA_FILE",
            aliases: &[],
            flag: Flag::Value("--ca-file", "PATH"),
            kind: Kind::Text,
            default: "bundled roots",
            help: "PEM CA certificates to trust instead of the bundled Mozilla roots.",
        }
        => fills ca_file: Option<Raw> = raw(), shown ca_file;

        PinnedPubkey {
            name: "pinned_pubkey",
            env: "STACKSENSE_PINNED_PUBKEY",
            aliases: &[],
            flag: Flag::Value("--pinned-pubkey", "PIN"),
            kind: Kind::Text,
            default: "(none)",
            help: "sha256//BASE64 (curl's --pinnedpubkey form; several with \";\"):\n\
           trust exactly the server key with this hash, also in a self-signed\n\
           certificate; --check prints the pin of the key a server shows.",
        }
        => fills pins: Option<Setting<Pins>> = optional(tls::parse_pins), shown value;

        VerifyTls {
            name: "verify_tls",
            env: "STACKSENSE_VERIFY_TLS",
            aliases: &[],
            flag: Flag::None,
            kind: Kind::Bool,
            default: "true",
            help: "The server's own agent's setting, read so that it is not silently\n\
           ignored: false is refused with a warning (verification stays on;\n\
           pin a self-signed server's key with pinned_pubkey instead).",
        }
        => fills verify_tls: Setting<bool> = or_default(true, value::boolean), shown verify_tls;

        Splay {
            name: "splay",
            env: "STACKSENSE_SPLAY",
            aliases: &[],
            flag: Flag::Sets("--no-splay", "false"),
            kind: Kind::Bool,
            default: "true",
            help: "--no-splay puts beats on exact multiples of the interval from\n\
           start instead of a random phase (splay keeps a fleet from\n\
           beating in lockstep).",
        }
        => fills splay: Setting<bool> = or_default(true, value::boolean), shown value;

        Keepalive {
            name: "keepalive",
            env: "STACKSENSE_KEEPALIVE",
            aliases: &[],
            flag: Flag::Sets("--no-keepalive", "false"),
            kind: Kind::Bool,
            default: "true",
            help: "Reuse the connection while the server keeps it open (a dead one is\n\
           replaced within the same beat). --no-keepalive: a new connection\n\
           per beat (TLS sessions are still resumed).",
        }
        => fills keepalive: Setting<bool> = or_default(true, value::boolean), shown value;

        Health {
            name: "health",
            env: "STACKSENSE_HEALTH",
            aliases: &[],
            flag: Flag::Value("--health", "CHECK"),
            kind: Kind::List,
            default: "(none)",
            help: "A check that must pass before each beat; repeat the flag for more\n\
           (\";\" between checks in the variable, an array in the file):\n\
           tcp HOST:PORT | http URL | cmd PROGRAM ARGS... | disk PATH MAX% |\n\
           memory MIN%|MIN{K,M,G} | load MAX (1-minute load per CPU).\n\
           \"timeout=SECS\" after the kind: its limit (default 5, cut to the\n\
           time left before the next beat). A failing check withholds the beat.",
        }
        => fills health: Setting<Vec<Check>> = checks(), shown health;

        Report {
            name: "report",
            env: "STACKSENSE_REPORT",
            aliases: &[],
            flag: Flag::Value("--report", "LIST"),
            kind: Kind::Text,
            default: "auto",
            help: "auto, off, or status, vitals, metrics, services, containers,\n\
           comma-separated.\n\
           auto: with the agent API, every push: metrics (CPU, memory, disks,\n\
           network: the server's page), services (running units, listening\n\
           ports, health checks) and containers (with a Docker or Podman\n\
           socket); with the legacy API, off. off: a\n\
           plain heartbeat {\"agent_version\": ...}. status: every beat\n\
           carries the checks' results (a failing check no longer withholds\n\
           it); vitals: and \"host\" figures.",
        }
        => fills report: Setting<Reporting> = or_default(Reporting::AUTO, Reporting::parse),
           shown report;

        MetricsInterval {
            name: "metrics_interval",
            env: "STACKSENSE_METRICS_INTERVAL",
            aliases: &[],
            flag: Flag::Value("--metrics-interval", "SECS"),
            kind: Kind::Seconds {
                min: 0.1,
                max: 86_400.0,
            },
            default: "30",
            help: "Seconds between metrics pushes, 0.1 to 86400, at least the\n\
           interval (equal: every beat; the beats between stay plain). The\n\
           default, the server's own agent's, is raised to the interval.\n\
           On a metered link, 300 sends a tenth of the bytes.",
        }
        => fills metrics_interval: Setting<Duration> = seconds(DEFAULT_METRICS_INTERVAL),
           shown pushes_every;

        ServicesInterval {
            name: "services_interval",
            env: "STACKSENSE_SERVICES_INTERVAL",
            aliases: &[],
            flag: Flag::Value("--services-interval", "SECS"),
            kind: Kind::Seconds {
                min: 0.1,
                max: 86_400.0,
            },
            default: "60",
            help: "Seconds between services pushes, 0.1 to 86400, at least the\n\
           interval; the default, the server's own agent's, is raised to the\n\
           interval. A check that changes its verdict goes at the next beat.",
        }
        => fills services_interval: Setting<Duration> = seconds(DEFAULT_SERVICES_INTERVAL),
           shown pushes_every;

        DockerHost {
            name: "docker_host",
            env: "STACKSENSE_DOCKER_HOST",
            aliases: &["DOCKER_HOST"],
            flag: Flag::Value("--docker-host", "SOCKET"),
            kind: Kind::Text,
            default: "auto",
            help: "Where the containers push asks Docker or Podman: unix:///PATH\n\
           (DOCKER_HOST's form, also read from DOCKER_HOST) or a socket path;\n\
           auto: /var/run/docker.sock, /run/docker.sock, then\n\
           /run/podman/podman.sock; off: no containers push. Opening the\n\
           socket is root-equivalent: the shipped unit cannot, unless you\n\
           grant it (install.sh --containers).",
        }
        => fills docker_host: Setting<Socket> = or_default(Socket::Auto, Socket::parse),
           shown value;
        }
    };
}
