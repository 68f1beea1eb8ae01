# shellcheck shell=bash
# Sourced by the packaging tests: one line per check, a count of failures,
# and a closing verdict. Every check runs even after one fails, so a run
# shows everything that is wrong at once.

failures=0

pass() { printf '  ok    %s\n' "$*"; }
fail() {
  printf '  FAIL  %s\n' "$*"
  failures=$((failures + 1))
}

# check WHAT COMMAND...: runs COMMAND (a predicate) and prints "ok WHAT" or
# "FAIL WHAT"; a failure also shows the last lines COMMAND printed.
# (Its locals have odd names so they never shadow a variable the
# predicate reads.)
check() {
  local _check_what=$1 _check_out
  shift
  if _check_out=$("$@" 2>&1); then
    pass "$_check_what"
  else
    fail "$_check_what"
    [ -z "$_check_out" ] || printf '%s\n' "$_check_out" | tail -n 10 | sed 's/^/        /'
  fi
}

# not COMMAND...: succeeds when COMMAND fails (a check that something is absent).
not() { ! "$@"; }

# note TEXT: a detail worth seeing in the log, not a check.
note() { printf '        %s\n' "$*"; }

# metrics_are_this_box LOG: the receiver (examples/receiver.rs) logged a
# metrics push whose memory_total is this machine's MemTotal (a container
# shares the host's /proc/meminfo), with some memory available, a CPU share
# and an uptime: real figures, not an empty push. Prints the last one.
metrics_are_this_box() {
  local total line
  total=$(awk '/^MemTotal:/ {printf "%.0f", $2 * 1024}' /proc/meminfo)
  line=$(grep "^  metrics " "$1" | tail -n 1)
  printf '%s\n' "$line"
  printf '%s\n' "$line" | grep -qE " memory_total=$total memory_available=[1-9][0-9]* cpu_percent=[0-9.]+ cpu_load_avg_1m=[0-9.]+ system_uptime_seconds=[1-9][0-9]* "
}

# metrics_have_disk LOG PATH: the last metrics push has PATH in disk_usage.
metrics_have_disk() {
  grep "^  metrics " "$1" | tail -n 1 | grep -qE " disks=([^ ]*,)?$2(,|$)"
}

# service_is LOG NAME STATUS: the last services push lists NAME as STATUS.
service_is() {
  grep "^  services " "$1" | tail -n 1 | grep -qF "$2=$3"
}

finish() {
  if [ "$failures" -gt 0 ]; then
    echo "$NAME: $failures check(s) failed"
    exit 1
  fi
  echo "$NAME: all checks passed"
}
