#!/usr/bin/env bash
# Measures a gateway with many back entries and agents: BenchmarkScale in
# integration/scale starts the Caddy binary with tildegate and SCALE_NAMES
# back entries (default 10,000), then loadagents (integration/loadagents)
# with as many agents of the real agent library, each from its own
# loopback address and split across processes under the open-file limit,
# and prints:
#
#   startup            s     gateway start to its answer for the last name
#   per name           KiB   resident memory per configured name, no agent yet
#   register           s     agents started to all registered
#   per agent          KiB   resident memory per connected agent (and its Go
#                            heap and goroutine stacks; again after the idle
#                            CPU's minute; and settled, once the runtime's
#                            next collection freed the handshakes' garbage
#                            and gave the pages back, with its heap and
#                            stacks; and the live heap alone, after a
#                            collection asked for)
#   idle CPU           %     of a core, all agents connected and idle, over SCALE_IDLE
#   /metrics scrape    MB s  its size, and the gateway's CPU for it
#   /tildegate/agents  MB s  the admin API's list of agents: its size and
#                            CPU; the list of names' CPU; one agent's
#                            entry (kB, ms), with its request's connection
#   reload             s     POST /load of a changed configuration
#   balance.bin edit   s     a name added to balance.bin until it answers
#   first request      ms    a name's first request, which opens its back connection
#   next request       ms    the same name's next one
#   restart storm      s     gateway restarted until all agents are registered again
#   storm peak RSS     x     the restarted gateway's peak RSS / the steady state
#
# Then BenchmarkTLSFloor (integration/scale) holds as many idle connections
# in a bare Go TLS server (integration/tlsfloor), each read by a goroutine and
# written one record every alive interval, which its peer answers: the
# floor under "per agent" and "idle CPU" that any Go server with crypto/tls
# would pay, printed beside them.
#
# Then BenchmarkAgent10000 (integration/tunnel) runs one tildegate-agent
# process with 10,000 entries against a gateway with as many, and prints the
# time until all are registered, the agent's and the gateway's RSS per
# entry, a /status, and an edit of the agent's file that changes one entry,
# a gateway config reload and a balance.bin edit, none of which may register
# any other entry again.
#
# Environment:
#   SCALE_NAMES=10000   back entries and agents
#   SCALE_IDLE=1m       how long idle CPU is measured
#   SCALE_ALIVE=20s     the tunnel's alive_interval (dead_after three of them)
#   ROUNDS=1            runs of the whole benchmark
#
# The figures are also written to bin/bench-scale-results.txt. It takes
# about 10 minutes with the defaults on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export SCALE_NAMES=${SCALE_NAMES:-10000}
export SCALE_IDLE=${SCALE_IDLE:-1m}
ROUNDS=${ROUNDS:-1}

[[ $SCALE_NAMES =~ ^[1-9][0-9]*$ ]] || { echo "bench-scale: SCALE_NAMES must be a positive integer" >&2; exit 1; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench-scale: ROUNDS must be a positive integer" >&2; exit 1; }

xdg=$(mktemp -d "${TMPDIR:-/tmp}/tildegate-bench-scale.XXXXXX")
trap 'rm -rf "$xdg"' EXIT
mkdir -p bin
out=bin/bench-scale-raw.txt
echo "bench-scale: $SCALE_NAMES names and agents, idle CPU over $SCALE_IDLE, $ROUNDS round(s)"
GOENV=$(go env GOENV) XDG_DATA_HOME=$xdg/data XDG_CONFIG_HOME=$xdg/config \
	go test -run '^$' -bench '^(BenchmarkScale|BenchmarkTLSFloor)$' -benchtime 1x -count "$ROUNDS" -timeout 60m ./integration/scale | tee "$out"
GOENV=$(go env GOENV) XDG_DATA_HOME=$xdg/data XDG_CONFIG_HOME=$xdg/config \
	go test -run '^$' -bench '^BenchmarkAgent10000$' -benchtime 1x -count "$ROUNDS" -timeout 60m ./integration/tunnel | tee -a "$out"

# value BENCHMARK UNIT prints the values of the metric UNIT of BENCHMARK,
# one a round.
value() {
	awk -v b="$1" -v u="$2" 'index($1, b) == 1 { for (i = 2; i < NF; i++) if ($(i + 1) == u) print $i }' "$out"
}
{
	echo
	echo "tildegate scale benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) CPUs"
	echo "$SCALE_NAMES back entries and agents; one value per round"
	row() { printf '  %-20s %-6s %s\n' "$1" "$2" "$(value BenchmarkScale "$3" | paste -sd' ')"; }
	row startup s s/startup
	row "per name" KiB KiB/name
	row register s s/register
	row "per agent" KiB KiB/agent
	row "  Go heap" KiB heap-KiB/agent
	row "  stacks" KiB stack-KiB/agent
	row "  after idle CPU" KiB KiB/agent-idle
	row "  settled" KiB KiB/agent-steady
	row "    Go heap" KiB heap-KiB/agent-steady
	row "    stacks" KiB stack-KiB/agent-steady
	row "  live heap" KiB live-KiB/agent
	row "idle CPU" "%" %core-idle
	row "/metrics scrape" MB MB/metrics
	row "  gateway CPU" s s/metrics-cpu
	row "/tildegate/agents" MB MB/agents-list
	row "  gateway CPU" s s/agents-list-cpu
	row "/tildegate/names" s s/names-list-cpu
	row "/tildegate/agents/b7" kB kB/agent-entry
	row "  gateway CPU" ms ms/agent-entry-cpu
	row reload s s/reload
	row "balance.bin edit" s s/edit
	row "first request" ms ms/first-request
	row "next request" ms ms/next-request
	row "restart storm" s s/storm
	row "storm peak RSS" x peak/steady-RSS
	echo "the floor: a bare Go TLS server with as many idle connections, kept alive alike"
	frow() { printf '  %-20s %-6s %s\n' "$1" "$2" "$(value BenchmarkTLSFloor "$3" | paste -sd' ')"; }
	frow "per connection" KiB KiB/conn
	frow "  Go heap" KiB heap-KiB/conn
	frow "  stacks" KiB stack-KiB/conn
	frow "  after idle CPU" KiB KiB/conn-idle
	frow "  settled" KiB KiB/conn-steady
	frow "    Go heap" KiB heap-KiB/conn-steady
	frow "    stacks" KiB stack-KiB/conn-steady
	frow "  live heap" KiB live-KiB/conn
	frow "idle CPU" "%" %core-idle
	echo "one agent process with 10,000 entries"
	arow() { printf '  %-20s %-6s %s\n' "$1" "$2" "$(value BenchmarkAgent10000 "$3" | paste -sd' ')"; }
	arow registered s s/registered
	arow "agent per entry" KiB agent-KiB/entry
	arow "gateway per entry" KiB gateway-KiB/entry
	arow "/status" s s/status
	arow "file edit" s s/edit
	arow "  applied in" s s/apply
	arow "gateway reload" s s/gateway-reload
	arow "balance.bin edit" s s/balance-edit
} | tee bin/bench-scale-results.txt
