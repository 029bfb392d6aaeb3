#!/usr/bin/env bash
# Runs every test with the race detector and fails when any test was
# skipped: a skip in CI would hide a test that did not run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Caddy keeps its certificates, its local CA and autosaved configs under
# XDG_DATA_HOME and XDG_CONFIG_HOME, which it reads when its package loads:
# every test binary, and every Caddy the tests start, gets fresh ones, so
# that tests never touch the user's own Caddy storage. The go command keeps
# reading the user's settings (go env -w), which live under XDG_CONFIG_HOME.
GOENV=$(go env GOENV) || exit 1
export GOENV
xdg=$(mktemp -d "${TMPDIR:-/tmp}/tildegate-test-xdg.XXXXXX") || exit 1
trap 'rm -rf "$xdg"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export XDG_DATA_HOME=$xdg/data XDG_CONFIG_HOME=$xdg/config
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"

mkdir -p bin
log=bin/test.log
go test -race -timeout 15m -v ./... >"$log" 2>&1
status=$?

grep -E '^(ok|FAIL|---|panic:)|^\s+--- ' "$log" | grep -v -- '--- PASS' || true
if ((status != 0)); then
	echo
	echo "test: failures (full log in $log):"
	grep -E -B2 -A30 -- '--- FAIL|^panic:' "$log" | head -400
	exit "$status"
fi
if grep -q -- '--- SKIP' "$log"; then
	echo "test: tests were skipped; every test must run (full log in $log)" >&2
	exit 1
fi
passed=$(grep -c -- '--- PASS' "$log")
echo "$passed passed, 0 failed"
