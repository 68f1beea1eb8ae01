# shellcheck shell=bash
# Shared by packaging/tests/systemd and packaging/tests/openrc (sourced, bash):
# a cached Debian bookworm tree from debootstrap, booted with systemd-nspawn
# on its own loopback, and a heartbeat receiver in its network namespace.
# The caller sets NAME (for messages), TREE, INCLUDE (debootstrap packages)
# and INIT (the container's PID 1 program, or "systemd" to boot with -b).

# shellcheck source=packaging/tests/check-lib.sh
. packaging/tests/check-lib.sh

CACHE="${STACKSENSE_CONTAINER_CACHE:-$HOME/.cache/stacksense-containers}"
MACHINE="ssh-test-$$"
PORT=18080
NSPAWN_PID=""
LEADER=""
RECEIVER_PID=""
WORK=""

log() { printf '== %s\n' "$*"; }
die() {
  printf '%s: %s\n' "$NAME" "$*" >&2
  exit 1
}

wait_for() { # SECONDS COMMAND...: true once COMMAND succeeds
  local tries=$(($1 * 10))
  shift
  for _ in $(seq "$tries"); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

install_tools() {
  [ "$(id -u)" = 0 ] || die "needs root (debootstrap, systemd-nspawn)"
  command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null && return
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd-container debootstrap >/dev/null
}

# The Debian mirror this machine's apt already uses.
mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n 1)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n 1)
  [ -n "$uri" ] || die "cannot find a Debian mirror in the apt configuration"
  echo "$uri"
}

build_tree() {
  [ -f "$TREE/.complete" ] && return
  log "building the container tree $TREE (once; 1-2 min)"
  rm -rf "$TREE" "$TREE.tmp"
  mkdir -p "$CACHE"
  debootstrap --variant=minbase --include="$INCLUDE" bookworm "$TREE.tmp" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
    || {
      tail -n 20 "$CACHE/debootstrap.log"
      die "debootstrap failed"
    }
  touch "$TREE.tmp/.complete"
  mv "$TREE.tmp" "$TREE"
}

in_ct() { nsenter -t "$LEADER" -a "$@"; }

# boot READY_COMMAND...: starts a throw-away copy of the tree (-x) with
# dist/out mounted at /mnt/dist, and waits until READY_COMMAND succeeds.
# A boot that never gets ready (seen about once in ten openrc-init boots
# right after another container stopped) is stopped and tried once more.
boot() {
  WORK=$(mktemp -d)
  trap cleanup EXIT
  local attempt
  for attempt in 1 2; do
    if boot_once "$@"; then
      return 0
    fi
    log "container not ready (attempt $attempt); console: $(tail -n 5 "$WORK/console.log" | tr '\n' ' ')"
    stop_container
  done
  die "container not ready twice; console: $(tail -n 20 "$WORK/console.log")"
}

boot_once() {
  log "booting $MACHINE ($INIT)"
  local how=(-b)
  [ "$INIT" = systemd ] || how=("$INIT")
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -q -x -D "$TREE" -M "$MACHINE" \
    --register=no --keep-unit --private-network --console=pipe --system-call-filter=bpf \
    --bind-ro="$PWD/dist/out:/mnt/dist" "${how[@]}" </dev/null >"$WORK/console.log" 2>&1 &
  NSPAWN_PID=$!
  LEADER=""
  for _ in $(seq 100); do
    LEADER=$(pgrep -P "$NSPAWN_PID" | head -n 1 || true)
    [ -n "$LEADER" ] && break
    sleep 0.1
  done
  [ -n "$LEADER" ] || return 1
  wait_for 30 "$@"
}

# Stops the container (politely under systemd, then by signal). Every step
# may find it gone already, which is fine (callers run under set -e).
stop_container() {
  [ -n "$NSPAWN_PID" ] || return 0
  if [ "$INIT" = systemd ] && [ -n "$LEADER" ]; then
    in_ct systemctl poweroff --no-block >/dev/null 2>&1 || true
    for _ in $(seq 50); do
      kill -0 "$NSPAWN_PID" 2>/dev/null || break
      sleep 0.1
    done
  fi
  kill "$NSPAWN_PID" 2>/dev/null || true
  for _ in $(seq 30); do
    kill -0 "$NSPAWN_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$NSPAWN_PID" 2>/dev/null || true
  wait "$NSPAWN_PID" 2>/dev/null || true
  NSPAWN_PID=""
  rm -rf "/run/systemd/nspawn/propagate/$MACHINE"
}

cleanup() {
  set +e
  [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null
  stop_container
  wait 2>/dev/null
  rm -rf "$WORK"
}

build_receiver() {
  cargo build --quiet --locked --example receiver
  RECEIVER="$PWD/target/debug/examples/receiver"
}

# A host process in the container's network namespace: the agent inside
# reaches it on the container's own 127.0.0.1.
# start_receiver [ARGS...]: the receiver example on $PORT; the arguments
# (e.g. --token T) are kept for later restarts.
# shellcheck disable=SC2120 # called with and without arguments
start_receiver() {
  [ $# -eq 0 ] || RECEIVER_ARGS=("$@")
  nsenter -t "$LEADER" -n "$RECEIVER" --port "$PORT" "${RECEIVER_ARGS[@]}" >>"$WORK/receiver.log" 2>&1 &
  RECEIVER_PID=$!
  wait_for 5 grep -q listening "$WORK/receiver.log" || die "receiver did not start: $(cat "$WORK/receiver.log")"
}

stop_receiver() {
  kill "$RECEIVER_PID" 2>/dev/null || true
  wait "$RECEIVER_PID" 2>/dev/null || true
  RECEIVER_PID=""
}

RECEIVER_ARGS=()
# Beats the receiver got: heartbeats, and the pushes that stand in for them.
beats() { grep -cE "POST /api/(agent/(heartbeat|metrics|services|containers)|heartbeat)/" "$WORK/receiver.log" || true; }
beats_at_least() { [ "$(beats)" -ge "$1" ]; }
