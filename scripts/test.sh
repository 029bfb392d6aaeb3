#!/usr/bin/env bash
# Runs every test with the race detector and fails when any test was
# skipped: a skip in CI would hide a test that did not run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
