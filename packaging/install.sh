#!/bin/sh
# Installs stacksense-heartbeat from a release archive: picks the build for
# this machine (uname -m), verifies it against SHA256SUMS, installs the
# binary, a config template and the systemd unit or OpenRC script (else
# prints the nohup line). POSIX sh: runs on busybox ash. Safe to re-run.
#
#   sh install.sh [--from DIR|URL] [--url URL --token TOKEN|- [--interval SECS]]
#   sh install.sh --uninstall [--purge]
#
# The StackSense server's installer takes the same --url, --token and
# --interval: make the token on the server first,
#   python manage.py create_agent_token <server id or name>
#
# --from DIR      where the .tar.gz archives and SHA256SUMS are
#                 (default: next to this script, or the repo's dist/out)
# --from URL      a release's download URL (http:// or https://): fetches
#                 SHA256SUMS and this machine's archive with curl or wget
#                 (busybox wget is enough), then verifies as above
# --url URL       the StackSense server's base URL (--api-url is the same)
# --token TOKEN   the agent token; "-" reads it from stdin (it then shows in
#                 no process list). Written to /etc/stacksense/token (0600,
#                 root), handed to systemd as a credential (OpenRC: readable
#                 by the stacksense group), never to the config, the unit or
#                 a command line. Given again, it replaces the old one.
# --token-file F  copy the token from file F instead
# --interval SECS seconds between beats (default 30)
# --server-id ID  the legacy API instead (POST /api/heartbeat/ID/), for
#                 servers that serve it; StackSense itself wants a token
#                 With --url, a new config is written, the server asked
#                 (stacksense-heartbeat --check) and the service started.
# --prefix DIR    install the binary to DIR/bin (default /usr/local)
# --init systemd|openrc|none
#                 override the detected init system
# --root DIR      install under DIR instead of / (for packaging and tests;
#                 no service is started)
# --print-target  print the build this machine gets (e.g. mipsel-unknown-linux-musl)
#                 and exit
# --containers    let the agent open the Docker or Podman socket ($DOCKER_HOST,
#                 else /var/run/docker.sock, /run/docker.sock,
#                 /run/podman/podman.sock) for the containers push: systemd,
#                 a drop-in adding the socket's group to the service; OpenRC,
#                 the stacksense user joins that group. ROOT-EQUIVALENT: who
#                 can open the socket can start a privileged container. Never
#                 done without this flag. Alone on an installed agent, it only
#                 grants and restarts. Revoke: install.sh --no-containers
# --uninstall     stop and remove the service and binary; keep the config
# --purge         with --uninstall, remove /etc/stacksense too
set -eu

PKG=stacksense-heartbeat
FROM=""
PREFIX=/usr/local
ROOT=""
INIT=""
SERVER_ID=""
API_URL=""
INTERVAL=""
TOKEN=""
TOKEN_FROM=""
UNINSTALL=""
PURGE=""
PRINT_TARGET=""
CONTAINERS=""

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case "$1" in
	--from) FROM=${2:?--from needs a directory or a release URL}; shift 2 ;;
	--prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
	--root) ROOT=${2:?--root needs a directory}; shift 2 ;;
	--init) INIT=${2:?--init needs systemd, openrc or none}; shift 2 ;;
	--server-id) SERVER_ID=${2:?--server-id needs a value}; shift 2 ;;
	--api-url | --url) API_URL=${2:?--url needs the base URL of the server}; shift 2 ;;
	--interval) INTERVAL=${2:?--interval needs seconds}; shift 2 ;;
	--token) TOKEN_FROM=${2:?--token needs the token, or - to read it from stdin}; shift 2 ;;
	--token-file) TOKEN_FROM=file:${2:?--token-file needs a file}; shift 2 ;;
	--uninstall) UNINSTALL=1; shift ;;
	--print-target) PRINT_TARGET=1; shift ;;
	--containers) CONTAINERS=grant; shift ;;
	--no-containers) CONTAINERS=revoke; shift ;;
	--purge) PURGE=1; shift ;;
	-h | --help) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done

BIN="$ROOT$PREFIX/bin/$PKG"
MAN="$ROOT$PREFIX/share/man/man1/$PKG.1"
CONF_DIR="$ROOT/etc/stacksense"
CONF="$CONF_DIR/heartbeat.conf"
TOKEN_FILE="$CONF_DIR/token"
DROPIN="$ROOT/etc/systemd/system/$PKG.service.d/token.conf"
CONTAINERS_DROPIN="$ROOT/etc/systemd/system/$PKG.service.d/containers.conf"
UNIT="$ROOT/etc/systemd/system/$PKG.service"
OPENRC="$ROOT/etc/init.d/$PKG"
CONFD="$ROOT/etc/conf.d/$PKG"

if [ -z "$INIT" ]; then
	if [ -d /run/systemd/system ]; then
		INIT=systemd
	elif command -v openrc-run >/dev/null 2>&1 || [ -x /sbin/openrc-run ]; then
		INIT=openrc
	else
		INIT=none
	fi
fi
case "$INIT" in systemd | openrc | none) ;; *) die "--init takes systemd, openrc or none, not $INIT" ;; esac

# Service managers are only driven on the live system.
live() { [ -z "$ROOT" ]; }

uninstall() {
	if [ "$INIT" = systemd ] && live; then
		systemctl disable --now "$PKG.service" >/dev/null 2>&1 || true
	fi
	if [ "$INIT" = openrc ] && live; then
		rc-service "$PKG" stop >/dev/null 2>&1 || true
		rc-update del "$PKG" default >/dev/null 2>&1 || true
	fi
	rm -f "$UNIT" "$DROPIN" "$CONTAINERS_DROPIN" "$OPENRC" "$BIN" "$MAN"
	rmdir "$(dirname "$DROPIN")" 2>/dev/null || true
	if [ "$INIT" = systemd ] && live; then systemctl daemon-reload || true; fi
	if [ -n "$PURGE" ]; then
		rm -rf "$CONF_DIR" "$CONFD"
		say "removed $PKG and its configuration"
	else
		say "removed $PKG; kept $CONF (--purge removes it)"
	fi
}

# The byte order of this system's programs: uname -m says "mips" on big-
# and little-endian MIPS alike. OpenWrt names it in DISTRIB_ARCH
# (mips_24kc, mipsel_24kc); elsewhere the sixth byte of an ELF header
# (EI_DATA) says: 1 little-endian, 2 big-endian.
mips_triple() {
	if [ -r /etc/openwrt_release ]; then
		case "$(sed -n "s/^DISTRIB_ARCH=['\"]*\([a-z0-9_]*\).*/\1/p" /etc/openwrt_release)" in
		mipsel_*) echo mipsel-unknown-linux-musl; return ;;
		mips_*) echo mips-unknown-linux-musl; return ;;
		esac
	fi
	data=$(od -An -tu1 -j5 -N1 /bin/sh 2>/dev/null \
		|| hexdump -s5 -n1 -e '1/1 "%u"' /bin/sh 2>/dev/null) || data=""
	case "$(echo "$data" | tr -d ' ')" in
	1) echo mipsel-unknown-linux-musl ;;
	2) echo mips-unknown-linux-musl ;;
	*) die "cannot tell this MIPS system's byte order (no od or hexdump): install mips-unknown-linux-musl (big-endian: ath79) or mipsel-unknown-linux-musl (little-endian: MediaTek) by hand" ;;
	esac
}

target_triple() {
	case "$(uname -m)" in
	x86_64 | amd64) echo x86_64-unknown-linux-musl ;;
	aarch64 | arm64) echo aarch64-unknown-linux-musl ;;
	armv7* | armv8l) echo armv7-unknown-linux-musleabihf ;;
	armv6*) echo arm-unknown-linux-musleabihf ;;
	riscv64) echo riscv64gc-unknown-linux-musl ;;
	mips | mipsel | mipsle) mips_triple ;;
	*) die "no build for $(uname -m); builds exist for x86_64, aarch64, armv7, armv6, riscv64 and 32-bit MIPS" ;;
	esac
}

find_archives() {
	here=$(cd "$(dirname "$0")" && pwd)
	for dir in "$FROM" "$here" "$here/../dist/out" "$here/.."; do
		if [ -n "$dir" ] && [ -f "$dir/SHA256SUMS" ]; then
			echo "$dir"
			return
		fi
	done
	die "no SHA256SUMS found; pass --from DIR (the folder with the .tar.gz archives and SHA256SUMS)"
}

# fetch URL FILE: download with whichever client the box has, bounded in time.
fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --proto '=http,https' --connect-timeout 15 --max-time 600 -o "$2" "$1" || return 1
	elif command -v wget >/dev/null 2>&1; then
		# Not wget -T: busybox 1.35's wget (Debian 12) segfaults with it.
		if command -v timeout >/dev/null 2>&1; then
			timeout 600 wget -q -O "$2" "$1" || { rm -f "$2"; return 1; }
		else
			wget -q -O "$2" "$1" || { rm -f "$2"; return 1; }
		fi
	else
		die "neither curl nor wget is here to download $1; download the archive and SHA256SUMS elsewhere and use --from DIR"
	fi
}

# download_release URL DIR: SHA256SUMS and this machine's archive into DIR.
download_release() {
	url=${1%/}
	fetch "$url/SHA256SUMS" "$2/SHA256SUMS" \
		|| die "cannot download $url/SHA256SUMS (see the line above); check the URL and the network. Nothing was installed"
	name=$(grep -o "$PKG-[^ ]*-$triple\.tar\.gz" "$2/SHA256SUMS" | head -n 1)
	[ -n "$name" ] || die "$url/SHA256SUMS lists no archive for $triple; is it a stacksense-heartbeat release?"
	say "downloading $url/$name"
	fetch "$url/$name" "$2/$name" \
		|| die "cannot download $url/$name (see the line above). Nothing was installed"
}

sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	else
		openssl dgst -sha256 -r "$1" | cut -d' ' -f1
	fi
}

# read_token: the token from --token, stdin (-) or --token-file, into
# TOKEN; only shell builtins touch it, so it shows in no process list.
read_token() {
	case "$TOKEN_FROM" in
	"") return ;;
	-) IFS= read -r TOKEN || [ -n "$TOKEN" ] || die "--token -: no token on stdin" ;;
	file:*)
		[ -r "${TOKEN_FROM#file:}" ] || die "--token-file ${TOKEN_FROM#file:}: cannot read it"
		IFS= read -r TOKEN <"${TOKEN_FROM#file:}" || [ -n "$TOKEN" ] || die "--token-file: the file is empty"
		;;
	*) TOKEN=$TOKEN_FROM ;;
	esac
	TOKEN_FROM=given
	[ -n "$TOKEN" ] || die "the token is empty; make one on the server: python manage.py create_agent_token <server>"
}

# write_token: the token to a root-only file (OpenRC: readable by the
# service's group), written under umask 077 so it is never readable by
# others, not even for a moment.
write_token() {
	[ -n "$TOKEN" ] || return 0
	mkdir -p "$CONF_DIR"
	(umask 077 && printf '%s\n' "$TOKEN" >"$TOKEN_FILE.new")
	mv -f "$TOKEN_FILE.new" "$TOKEN_FILE"
	say "wrote the token to $TOKEN_FILE (mode 0600)"
}

write_config() {
	mkdir -p "$CONF_DIR"
	if [ -f "$CONF" ]; then
		say "kept existing $CONF"
		[ -z "$API_URL" ] || say "  (--url was not written into it; edit api_url there if it changed)"
		return
	fi
	if [ -n "$API_URL" ]; then
		# No token here: this file is world-readable. token_file names it
		# for root's --check and for OpenRC and nohup; under systemd the
		# service gets it as a credential, which wins over this file.
		{
			printf '{\n    "api_url": "%s"' "$API_URL"
			[ -z "$SERVER_ID" ] || printf ',\n    "server_id": "%s"' "$SERVER_ID"
			[ -z "$INTERVAL" ] || printf ',\n    "interval": %s' "$INTERVAL"
			if [ -n "$TOKEN" ] || [ -f "$TOKEN_FILE" ]; then
				printf ',\n    "token_file": "%s"' "/etc/stacksense/token"
			fi
			printf '\n}\n'
		} >"$CONF"
	else
		cp "$1/packaging/heartbeat.conf" "$CONF"
	fi
	chmod 0644 "$CONF"
	say "wrote $CONF"
}

# configured: the config is complete and the server takes it (--check asks
# it: GET /api/agent/ping/, not a beat). Its words go to the screen.
configured() {
	set -- --check --config "$CONF"
	[ ! -f "$TOKEN_FILE" ] || set -- "$@" --token-file "$TOKEN_FILE"
	if out=$("$BIN" "$@" 2>&1); then
		printf '%s\n' "$out" | grep '^server ' || true
		return 0
	fi
	printf '%s\n' "$out" | grep -E '^server |error:|WARN' >&2 || true
	return 1
}

install_systemd() {
	mkdir -p "$(dirname "$UNIT")"
	sed "s#/usr/bin/$PKG#$PREFIX/bin/$PKG#g" "$1/packaging/systemd/$PKG.service" >"$UNIT"
	chmod 0644 "$UNIT"
	say "installed $UNIT"
	if [ -f "$TOKEN_FILE" ]; then
		# The token reaches the service as a credential only its dynamic
		# user can read; the unit itself never holds it.
		mkdir -p "$(dirname "$DROPIN")"
		printf '[Service]\nLoadCredential=token:/etc/stacksense/token\n' >"$DROPIN"
		chmod 0644 "$DROPIN"
		say "installed $DROPIN"
	fi
	live || return 0
	systemctl daemon-reload
	systemctl enable "$PKG.service" >/dev/null 2>&1
	if configured; then
		systemctl restart "$PKG.service"
		say "started: systemctl status $PKG; journalctl -u $PKG"
	else
		say "enabled, not started: fix what the lines above say (in $CONF), check it with"
		say "  $PREFIX/bin/$PKG --check --config /etc/stacksense/heartbeat.conf"
		say "then: systemctl start $PKG"
		NOT_STARTED=1
	fi
}

install_openrc() {
	mkdir -p "$(dirname "$OPENRC")" "$(dirname "$CONFD")"
	sed "s#/usr/bin/$PKG#$PREFIX/bin/$PKG#g" "$1/packaging/openrc/$PKG" >"$OPENRC"
	chmod 0755 "$OPENRC"
	[ -f "$CONFD" ] || cp "$1/packaging/openrc/$PKG.confd" "$CONFD"
	say "installed $OPENRC and $CONFD"
	live || return 0
	if ! id stacksense >/dev/null 2>&1; then
		if command -v adduser >/dev/null 2>&1 && adduser -S -D -H -s /sbin/nologin stacksense >/dev/null 2>&1; then :
		else useradd --system --no-create-home --shell /usr/sbin/nologin stacksense; fi
	fi
	if [ -f "$TOKEN_FILE" ]; then
		chown root:stacksense "$TOKEN_FILE" && chmod 0640 "$TOKEN_FILE"
	fi
	rc-update add "$PKG" default >/dev/null
	if configured; then
		rc-service "$PKG" restart
	else
		say "added to the default runlevel, not started: fix what the lines above say (in $CONF), then: rc-service $PKG start"
		NOT_STARTED=1
	fi
}

# The engine's socket: DOCKER_HOST's (unix://), else the first that exists.
container_socket() {
	case "${DOCKER_HOST:-}" in
	unix://*) printf '%s\n' "${DOCKER_HOST#unix://}"; return 0 ;;
	"") ;;
	*) die "--containers: DOCKER_HOST=$DOCKER_HOST is not a unix:// socket; the agent asks the engine only over its unix socket" ;;
	esac
	for s in /var/run/docker.sock /run/docker.sock /run/podman/podman.sock; do
		if [ -S "$ROOT$s" ]; then
			printf '%s\n' "$s"
			return 0
		fi
	done
	die "--containers: no Docker or Podman socket (/var/run/docker.sock, /run/docker.sock, /run/podman/podman.sock); start the engine (or set DOCKER_HOST=unix:///PATH) and run this again"
}

# Lets the agent open the engine's socket, by the socket's group.
grant_containers() {
	socket=$(container_socket)
	[ -S "$ROOT$socket" ] || die "--containers: $socket is not a socket"
	gid=$(stat -L -c %g "$ROOT$socket")
	group=$(stat -L -c %G "$ROOT$socket")
	if [ "$gid" = 0 ]; then
		die "--containers: $socket belongs to group root, and granting that group would give the agent far more than the socket. Give the socket a group of its own first (Podman: systemctl edit podman.socket, then [Socket] SocketGroup=docker, after groupadd -r docker) and run this again"
	fi
	case "$INIT" in
	systemd)
		mkdir -p "$(dirname "$CONTAINERS_DROPIN")"
		{
			printf '# Written by install.sh --containers: the agent may open %s\n' "$socket"
			printf '# (group %s) for the containers push. This is ROOT-EQUIVALENT: whoever\n' "$group"
			printf '# can open the socket can start a privileged container. Revoke with\n'
			printf '# install.sh --no-containers, or delete this file and restart.\n'
			printf '[Service]\nSupplementaryGroups=%s\n' "$group"
			printf 'Environment=STACKSENSE_DOCKER_HOST=unix://%s\n' "$socket"
		} >"$CONTAINERS_DROPIN"
		chmod 0644 "$CONTAINERS_DROPIN"
		say "installed $CONTAINERS_DROPIN: the agent may open $socket (group $group; root-equivalent)"
		;;
	openrc)
		if live; then
			if command -v addgroup >/dev/null 2>&1 && addgroup stacksense "$group" >/dev/null 2>&1; then :
			else usermod -a -G "$group" stacksense; fi
		fi
		say "the stacksense user joined group $group: the agent may open $socket (root-equivalent)"
		;;
	none) say "no service here: run the agent as a user in group $group to report containers" ;;
	esac
}

revoke_containers() {
	case "$INIT" in
	systemd) rm -f "$CONTAINERS_DROPIN" ;;
	openrc)
		if live && socket=$(container_socket 2>/dev/null); then
			group=$(stat -L -c %G "$ROOT$socket")
			if command -v delgroup >/dev/null 2>&1 && delgroup stacksense "$group" >/dev/null 2>&1; then :
			else gpasswd -d stacksense "$group" >/dev/null 2>&1 || true; fi
		fi
		;;
	none) ;;
	esac
	say "the agent may no longer open the container engine's socket"
}

restart_service() {
	live || return 0
	case "$INIT" in
	systemd) systemctl daemon-reload && systemctl try-restart "$PKG.service" ;;
	openrc) rc-service "$PKG" --ifstarted restart ;;
	none) ;;
	esac
}

install_none() {
	# No service to start, but the server is asked all the same: a wrong
	# URL or token is said now, not found later in a log nobody reads.
	if live && ! configured; then
		say "not ready: fix what the lines above say (in $CONF), check it with"
		say "  $PREFIX/bin/$PKG --check --config /etc/stacksense/heartbeat.conf"
		NOT_STARTED=1
	fi
	say "no systemd or OpenRC here; run it with nohup (survives logout, logs to the file):"
	say "  nohup $PREFIX/bin/$PKG --config /etc/stacksense/heartbeat.conf >>/var/log/$PKG.log 2>&1 &"
	say "or from cron, one beat per minute (see the README for every 30 s):"
	say "  * * * * * $PREFIX/bin/$PKG --once --config /etc/stacksense/heartbeat.conf"
}

if [ -n "$PRINT_TARGET" ]; then
	target_triple
	exit 0
fi
if [ -n "$UNINSTALL" ]; then
	uninstall
	exit 0
fi
# --containers or --no-containers alone, on an installed agent.
if [ -n "$CONTAINERS" ] && [ -z "$FROM$API_URL$TOKEN_FROM$SERVER_ID" ] && [ -x "$BIN" ]; then
	"${CONTAINERS}_containers"
	restart_service
	exit 0
fi

read_token
NOT_STARTED=""
triple=$(target_triple)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "$FROM" in
http://* | https://*)
	mkdir "$work/download"
	download_release "$FROM" "$work/download"
	dir="$work/download"
	;;
*) dir=$(find_archives) ;;
esac
set -- "$dir"/$PKG-*-"$triple".tar.gz
[ -f "$1" ] || die "no $PKG archive for $triple in $dir"
[ $# -eq 1 ] || die "several archives for $triple in $dir; keep one: $*"
archive=$1
name=$(basename "$archive")
expected=$(grep " [* ]\{0,1\}$name\$" "$dir/SHA256SUMS" | cut -d' ' -f1)
[ -n "$expected" ] || die "$name is not listed in $dir/SHA256SUMS"
actual=$(sha256 "$archive")
[ "$expected" = "$actual" ] \
	|| die "$name does not match SHA256SUMS (expected $expected, got $actual): the file is damaged or not the released one. Nothing was installed; download it again from the release"
say "verified $name"

tar -xzf "$archive" -C "$work"
src="$work/${name%.tar.gz}"

mkdir -p "$(dirname "$BIN")"
# Install to a temporary name and rename, so a running agent is never
# left with a half-written binary.
cp "$src/$PKG" "$BIN.new"
chmod 0755 "$BIN.new"
mv -f "$BIN.new" "$BIN"
say "installed $BIN ($("$BIN" --version))"
if [ -f "$src/packaging/$PKG.1" ]; then
	mkdir -p "$(dirname "$MAN")"
	cp "$src/packaging/$PKG.1" "$MAN"
	chmod 0644 "$MAN"
fi
write_token
write_config "$src"
"install_$INIT" "$src"
# After the service's user exists (OpenRC makes it); started, it restarts.
if [ -n "$CONTAINERS" ]; then
	"${CONTAINERS}_containers"
	[ -n "$NOT_STARTED" ] || restart_service
fi
# Like the server's own installer: a server that refuses the settings is
# an error, though everything is installed and enabled.
[ -z "$NOT_STARTED" ] || exit 1
