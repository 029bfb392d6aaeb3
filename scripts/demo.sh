#!/usr/bin/env bash
# Runs the demo of `make run` from bin/: Caddy with examples/demo/Caddyfile
# (the gateway and its demo backends), then, once the gateway listens,
# tildegate-agent with examples/demo/backbalance.bin, which carries /~~home
# through its tunnel. Ctrl-C or SIGTERM stops both, and the script returns
# when both have ended; if either ends by itself, the other is stopped too.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each child gets a process group of its own, so that Ctrl-C reaches only
# this script, which then stops each child once, with SIGTERM: Caddy and
# the agent end at once on a second signal, without their graceful stop.
set -m

pids=()

# stop sends SIGTERM to the children still running and waits for them; a
# second Ctrl-C meanwhile kills them.
stop() {
	trap 'kill -KILL "${pids[@]}" 2>/dev/null' INT TERM HUP
	kill -TERM "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
}
trap 'stop; exit 129' HUP
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

bin/caddy run --config examples/demo/Caddyfile --adapter caddyfile &
pids+=($!)

# The agent would retry a gateway that is not listening yet, but with a
# logged error and a backoff: start it once the gateway accepts.
for ((i = 0; i < 100; i++)); do
	if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
		break
	fi
	if ! kill -0 "${pids[0]}" 2>/dev/null; then
		wait "${pids[0]}"
		exit
	fi
	sleep 0.1
done

bin/tildegate-agent -config examples/demo/backbalance.bin &
pids+=($!)

wait -n
status=$?
stop
exit "$status"
