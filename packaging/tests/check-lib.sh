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

finish() {
  if [ "$failures" -gt 0 ]; then
    echo "$NAME: $failures check(s) failed"
    exit 1
  fi
  echo "$NAME: all checks passed"
}
