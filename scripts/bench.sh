#!/usr/bin/env bash
# Measures tildegate against Caddy's own reverse_proxy with wrk, end to end
# over loopback: one backend Caddy, one gateway Caddy, two tildegate-agents.
#
# Paths, all on the gateway's plain HTTP site and all ending at the same
# backend:
#   plain        /plain/x         reverse_proxy (the baseline)
#   aa           /aa/x            a second, identical reverse_proxy: the A/A
#                                 control, whose ratio to plain is the noise band
#   direct       /~~direct/x      a tildegate server entry
#   tunnel       /~~tunnel/x      a back entry, its agent connected over TLS
#   tunnelplain  /~~tunnelplain/x a back entry, its agent connected over plain HTTP
#
# Loads:
#   keepalive    wrk -t2 -c50                        keep-alive connections
#   single       wrk -t1 -c1                         one connection, one request at a time
#   newconn      wrk -t2 -c50 -H 'Connection: close' a new client connection per request
#   bulk         wrk -t1 -c1 on /big                 100 MiB downloads, one at a time
#
# Runs are interleaved: each round runs every load on every path, and the
# order of the paths rotates from round to round. The table shows medians
# over the rounds and is also written to bin/bench-results.txt; the raw wrk
# outputs are copied to bin/bench-raw/.
#
# Beside the rates, the table shows the CPU time each request (each MB for
# bulk) cost: on the whole machine (every process, wrk included, from
# /proc/stat), in the gateway, and in the path's agent, split into user and
# system time (from /proc/PID/stat). Everything shares the same cores, so
# the whole machine's CPU per request is what sets the rates, and the
# agent's share shows what the extra hop costs. Below the table, the CPU
# targets of the tunnel over TLS are checked against these medians: the
# gateway's per request within 1.1x plain's, its per MB in bulk within
# 1.1x (plain's + one pass of the TLS cipher, BenchmarkCipherPass of
# internal/mux, run once a round), the agent's at most 50 us per
# keep-alive request and 763 us per MB (80 ms per 100 MiB).
#
# Environment:
#   ROUNDS=5        rounds
#   DURATION=5s     length of each wrk run
#   PATHS="plain aa direct tunnel tunnelplain"   paths to measure (plain is always included)
#   LOADS="keepalive single newconn bulk"        loads to measure
#   SPARE=2         the agents' -spare
#   KEEP_TMP=1      keep the temporary directory (configs, logs, certificates)
#
# Exits non-zero when a run failed: non-2xx/3xx responses, socket errors
# (connect errors with 'Connection: close' are only reported), or no
# requests at all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
PATHS=${PATHS:-plain aa direct tunnel tunnelplain}
LOADS=${LOADS:-keepalive single newconn bulk}
SPARE=${SPARE:-2}
KEEP_TMP=${KEEP_TMP:-}

ALL_PATHS=(plain aa direct tunnel tunnelplain)
ALL_LOADS=(keepalive single newconn bulk)
PASSWORD=s3cret

die() {
	echo "bench: $*" >&2
	exit 1
}

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 5s, 2m or 5, not '$DURATION'"

# contains reports whether word $1 is among the remaining arguments.
contains() {
	local want=$1 w
	shift
	for w in "$@"; do
		[[ $w == "$want" ]] && return 0
	done
	return 1
}

read -r -a want_paths <<<"$PATHS"
read -r -a loads <<<"$LOADS"
paths=(plain)
for p in "${ALL_PATHS[@]}"; do
	if [[ $p != plain ]] && contains "$p" "${want_paths[@]}"; then
		paths+=("$p")
	fi
done
for p in "${want_paths[@]}"; do
	contains "$p" "${ALL_PATHS[@]}" || die "unknown path '$p' in PATHS (known: ${ALL_PATHS[*]})"
done
for l in "${loads[@]}"; do
	contains "$l" "${ALL_LOADS[@]}" || die "unknown load '$l' in LOADS (known: ${ALL_LOADS[*]})"
done
((${#loads[@]} > 0)) || die "LOADS is empty"

for cmd in wrk curl openssl go ss; do
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not installed (make deps installs wrk)"
done

need_agent=
if contains tunnel "${paths[@]}" || contains tunnelplain "${paths[@]}"; then
	need_agent=1
fi

echo "bench: building bin/caddy${need_agent:+ and bin/tildegate-agent}"
mkdir -p bin
go build -o bin/caddy ./cmd/caddy
if [[ -n $need_agent ]]; then
	go build -o bin/tildegate-agent ./cmd/tildegate-agent
fi
# With bulk through the tunnel over TLS, every round also measures one pass
# of the TLS cipher over a MB, which the gateway's bulk target adds to
# plain's.
cipher_test=
if contains tunnel "${paths[@]}" && contains bulk "${loads[@]}"; then
	cipher_test=bin/cipher.test
	go test -c -o "$cipher_test" ./internal/mux
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tildegate-bench.XXXXXX")
pids=()
wrk_pid=

# cleanup stops every process this script started, the agents first, and
# removes the temporary directory.
cleanup() {
	local status=$? pid i
	trap - EXIT INT TERM
	if [[ -n $wrk_pid ]]; then
		kill "$wrk_pid" 2>/dev/null || true
	fi
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[i]}" 2>/dev/null || true
	done
	for i in {1..50}; do
		local alive=
		for pid in "${pids[@]}" $wrk_pid; do
			if kill -0 "$pid" 2>/dev/null; then
				alive=1
			fi
		done
		[[ -z $alive ]] && break
		sleep 0.1
	done
	for pid in "${pids[@]}" $wrk_pid; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n $KEEP_TMP ]]; then
		echo "bench: kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$tmp/www" "$tmp/raw" "$tmp/logs"

# The Caddys keep their storage in the temporary directory, never in the
# user's own (Caddy reads these when it starts).
export GOENV=${GOENV:-$(go env GOENV)}
export XDG_DATA_HOME=$tmp/xdg-data XDG_CONFIG_HOME=$tmp/xdg-config
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"

# Ports: random ones below the ephemeral range (so that wrk's and the
# proxies' outgoing connections cannot take them) that nothing listens on.
taken_ports=" $(ss -Hltn | awk '{n = split($4, a, ":"); printf "%s ", a[n]}') "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		if [[ $taken_ports != *" $p "* ]]; then
			taken_ports+="$p "
			echo "$p"
			return
		fi
	done
}
BACKEND=$(free_port)
G=$(free_port)
GT=$(free_port)
ADMIN=$(free_port)

# A throwaway CA and a certificate for 127.0.0.1, for the gateway's TLS site.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=tildegate bench CA" -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>"$tmp/logs/openssl.log"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-subj "/CN=127.0.0.1" -keyout "$tmp/key.pem" -out "$tmp/cert.csr" 2>>"$tmp/logs/openssl.log"
printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=CA:FALSE" \
	"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$tmp/cert.ext"
openssl x509 -req -in "$tmp/cert.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
	-days 2 -extfile "$tmp/cert.ext" -out "$tmp/cert.pem" 2>>"$tmp/logs/openssl.log"

# The backend: a 100-byte answer, and a 100 MiB file at /big.
printf -v pad '%95s' ''
BODY="hello${pad// /.}"
head -c 100M /dev/urandom >"$tmp/www/big"
BIG_SIZE=$((100 * 1024 * 1024))

cat >"$tmp/backend.caddyfile" <<EOF
{
	admin off
	auto_https off
	persist_config off
}

http://127.0.0.1:$BACKEND {
	handle /big {
		root * $tmp/www
		file_server
	}
	handle {
		respond "$BODY"
	}
}
EOF

tildegate_block="tildegate {
		server direct http://127.0.0.1:$BACKEND
		agent tunnel {
			password $PASSWORD
		}
		agent tunnelplain {
			password $PASSWORD
		}
	}"

cat >"$tmp/gateway.caddyfile" <<EOF
{
	admin 127.0.0.1:$ADMIN
	auto_https off
	persist_config off
}

http://127.0.0.1:$G {
	handle_path /plain/* {
		reverse_proxy 127.0.0.1:$BACKEND
	}
	handle_path /aa/* {
		reverse_proxy 127.0.0.1:$BACKEND
	}
	$tildegate_block
}

https://127.0.0.1:$GT {
	tls $tmp/cert.pem $tmp/key.pem
	$tildegate_block
}
EOF

echo "SSL /~~tunnel=$PASSWORD#127.0.0.1:$GT => 127.0.0.1:$BACKEND;" >"$tmp/tunnel.bin"
echo "/~~tunnelplain=$PASSWORD#127.0.0.1:$G => 127.0.0.1:$BACKEND;" >"$tmp/tunnelplain.bin"

# start NAME CMD... runs a process in the background, logging to logs/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$tmp/logs/$name.log" 2>&1 &
	pids+=($!)
	printf -v "pid_$name" %s "$!"
}

# wait_for NAME URL waits until URL answers 200, failing if process NAME exits.
wait_for() {
	local name=$1 url=$2 pidvar="pid_$1" code i
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "${!pidvar}" 2>/dev/null; then
			echo "bench: $name exited; its log:" >&2
			tail -n 30 "$tmp/logs/$name.log" >&2
			exit 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
		[[ $code == 200 ]] && return 0
		sleep 0.1
	done
	echo "bench: $url did not answer 200 within 30s (last: $code); $name's log:" >&2
	tail -n 30 "$tmp/logs/$name.log" >&2
	exit 1
}

# wait_registered NAME waits for agent NAME to log that it registered.
wait_registered() {
	local name=$1 pidvar="pid_$1" i
	for ((i = 0; i < 300; i++)); do
		grep -q registered "$tmp/logs/$name.log" && return 0
		if ! kill -0 "${!pidvar}" 2>/dev/null; then
			echo "bench: agent $name exited; its log:" >&2
			tail -n 30 "$tmp/logs/$name.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "bench: agent $name did not register within 30s; its log:" >&2
	tail -n 30 "$tmp/logs/$name.log" >&2
	exit 1
}

url_prefix() {
	case $1 in
	plain | aa) echo "http://127.0.0.1:$G/$1" ;;
	*) echo "http://127.0.0.1:$G/~~$1" ;;
	esac
}

echo "bench: backend 127.0.0.1:$BACKEND, gateway http://127.0.0.1:$G and https://127.0.0.1:$GT, temp dir $tmp"
start backend bin/caddy run --adapter caddyfile --config "$tmp/backend.caddyfile"
wait_for backend "http://127.0.0.1:$BACKEND/x"
start gateway bin/caddy run --adapter caddyfile --config "$tmp/gateway.caddyfile"
wait_for gateway "http://127.0.0.1:$G/plain/x"

if contains tunnel "${paths[@]}"; then
	start tunnel bin/tildegate-agent -config "$tmp/tunnel.bin" -ca "$tmp/ca.pem" -spare "$SPARE"
	wait_registered tunnel
fi
if contains tunnelplain "${paths[@]}"; then
	start tunnelplain bin/tildegate-agent -config "$tmp/tunnelplain.bin" -spare "$SPARE"
	wait_registered tunnelplain
fi

# Every path must answer with the backend's body, and /big in full, before
# anything is measured.
for p in "${paths[@]}"; do
	wait_for gateway "$(url_prefix "$p")/x"
	body=$(curl -s --max-time 10 "$(url_prefix "$p")/x")
	[[ $body == "$BODY" ]] || die "$p: /x answered '${body:0:200}' instead of the backend's body"
	if contains bulk "${loads[@]}"; then
		size=$(curl -s -o /dev/null --max-time 120 -w '%{http_code} %{size_download}' "$(url_prefix "$p")/big")
		[[ $size == "200 $BIG_SIZE" ]] || die "$p: /big answered '$size' (status, bytes) instead of '200 $BIG_SIZE'"
	fi
done

# load_args LOAD prints wrk's arguments for LOAD, one a line.
load_args() {
	case $1 in
	keepalive) printf '%s\n' -t2 -c50 ;;
	single) printf '%s\n' -t1 -c1 ;;
	newconn) printf '%s\n' -t2 -c50 -H 'Connection: close' ;;
	bulk) printf '%s\n' -t1 -c1 --timeout 120s ;;
	esac
}
load_title() {
	case $1 in
	keepalive) echo "keep-alive, wrk -t2 -c50" ;;
	single) echo "one connection, wrk -t1 -c1" ;;
	newconn) echo "new connection per request, wrk -t2 -c50 -H 'Connection: close'" ;;
	bulk) echo "bulk, 100 MiB downloads of /big, wrk -t1 -c1" ;;
	esac
}

# parse FILE prints one record for a wrk output: requests/s, p50 and p99 in
# ms, MB/s (10^6 bytes), requests, MB read, and the connect, read, write,
# timeout and non-2xx/3xx error counts.
parse() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /[0-9]s$/) return v * 1000
		if (v ~ /m$/) return v * 60000
		if (v ~ /h$/) return v * 3600000
		return v + 0
	}
	function mb(v) {
		if (v ~ /GB$/) return v * 1073741824 / 1e6
		if (v ~ /MB$/) return v * 1048576 / 1e6
		if (v ~ /KB$/) return v * 1024 / 1e6
		return v / 1e6
	}
	BEGIN { rps = 0; p50 = 0; p99 = 0; mbs = 0; reqs = 0; mbread = 0; c = 0; r = 0; w = 0; t = 0; n = 0 }
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	$2 == "requests" && $3 == "in" { reqs = $1 + 0; mbread = mb($5) }
	$1 == "Socket" && $2 == "errors:" { c = $4 + 0; r = $6 + 0; w = $8 + 0; t = $10 + 0 }
	/^ *Non-2xx or 3xx responses:/ { n = $NF + 0 }
	$1 == "Requests/sec:" { rps = $2 + 0 }
	$1 == "Transfer/sec:" { mbs = mb($2) }
	END { printf "%.2f %.3f %.3f %.2f %d %.2f %d %d %d %d %d\n", rps, p50, p99, mbs, reqs, mbread, c, r, w, t, n }
	' "$1"
}

# log_marks notes how long each process's log is; new_log_errors then
# prints the errors logged since, counted by message: the gateway's
# error-level entries (with their HTTP status) and the agents' warnings and
# errors. It tells what a path's non-2xx responses were.
declare -A marks
log_marks() {
	local f
	for f in "$tmp"/logs/*.log; do
		marks[$f]=$(wc -l <"$f")
	done
}
new_log_errors() {
	local f
	for f in "$tmp"/logs/*.log; do
		tail -n "+$((${marks[$f]:-0} + 1))" "$f" | awk -v who="$(basename "$f" .log)" '
		/"level":"error"/ {
			msg = ""; status = ""
			if (match($0, /"msg":"[^"]*"/)) msg = substr($0, RSTART + 7, RLENGTH - 8)
			if (match($0, /"status":[0-9]+/)) status = substr($0, RSTART + 9, RLENGTH - 9) " "
			print who ": " status msg
		}
		/\t(WARN|ERROR)\t/ {
			split($0, f, "\t")
			print who ": " f[2] " " f[3]
		}'
	done | sort | uniq -c | sort -rn | awk '{ $1 = $1 "x"; print }'
}

# cpu_snapshot PATH prints CPU time so far, in clock ticks: the whole
# machine's busy time (all CPUs; idle, iowait and steal left out), the
# gateway's, and the user and system time of PATH's agent (0 0 when the
# path has none).
CLK_TCK=$(getconf CLK_TCK)
cpu_snapshot() {
	local agent=0 pidvar
	case $1 in
	tunnel | tunnelplain)
		pidvar="pid_$1"
		agent=${!pidvar}
		;;
	esac
	local machine gateway agent_times="0 0"
	machine=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat)
	gateway=$(proc_ticks "$pid_gateway" | awk '{ print $1 + $2 }')
	if ((agent != 0)); then
		agent_times=$(proc_ticks "$agent")
	fi
	echo "$machine $gateway $agent_times"
}
# proc_ticks PID prints the user and system time of process PID in clock
# ticks. The fields are counted after the command name, which may hold
# spaces.
proc_ticks() {
	local stat
	stat=$(</proc/"$1"/stat)
	stat=${stat##*) }
	awk '{ print $12, $13 }' <<<"$stat"
}

results=$tmp/results.txt
: >"$results"
failures=()
runs=$((ROUNDS * ${#loads[@]} * ${#paths[@]}))
echo "bench: $runs runs of $DURATION (${ROUNDS} rounds x ${#loads[@]} loads x ${#paths[@]} paths)"

run=0
for ((round = 1; round <= ROUNDS; round++)); do
	for load in "${loads[@]}"; do
		mapfile -t args < <(load_args "$load")
		target=x
		[[ $load == bulk ]] && target=big
		for ((i = 0; i < ${#paths[@]}; i++)); do
			path=${paths[(i + round - 1) % ${#paths[@]}]}
			run=$((run + 1))
			out=$tmp/raw/round$round-$load-$path.txt
			log_marks
			read -r cpu0_machine cpu0_gateway cpu0_user cpu0_sys < <(cpu_snapshot "$path")
			wrk "${args[@]}" -d"$DURATION" --latency "$(url_prefix "$path")/$target" >"$out" 2>&1 &
			wrk_pid=$!
			wrk_status=0
			wait "$wrk_pid" || wrk_status=$?
			wrk_pid=
			read -r cpu1_machine cpu1_gateway cpu1_user cpu1_sys < <(cpu_snapshot "$path")
			logged=${out%.txt}.logged-errors.txt
			new_log_errors >"$logged"
			[[ -s $logged ]] || rm -f "$logged"
			read -r rps p50 p99 mbs reqs mbread ce re we te ne < <(parse "$out")
			echo "$load $path $round $rps $p50 $p99 $mbs $reqs $mbread $ce $re $we $te $ne" \
				"$((cpu1_machine - cpu0_machine)) $((cpu1_gateway - cpu0_gateway))" \
				"$((cpu1_user - cpu0_user)) $((cpu1_sys - cpu0_sys))" >>"$results"

			problems=()
			((wrk_status == 0)) || problems+=("wrk exited with status $wrk_status")
			((ne == 0)) || problems+=("$ne non-2xx/3xx responses")
			((re == 0)) || problems+=("$re read errors")
			((we == 0)) || problems+=("$we write errors")
			((te == 0)) || problems+=("$te timeouts")
			if ((ce != 0)) && [[ $load != newconn ]]; then
				problems+=("$ce connect errors")
			fi
			if ((reqs == 0)) && { [[ $load != bulk ]] || [[ $mbs == 0.00 ]]; }; then
				problems+=("no requests completed")
			fi
			note=
			if ((${#problems[@]} > 0)); then
				note="  FAILED: $(
					IFS=,
					echo "${problems[*]}"
				)"
				failures+=("round $round, $load, $path:${note#*:} (raw output: bin/bench-raw/${out##*/})")
				if [[ -f $logged ]]; then
					while IFS= read -r line; do
						failures+=("    logged: $line")
					done < <(head -n 5 "$logged")
				fi
			elif ((ce != 0)); then
				note="  ($ce connect errors)"
			fi
			if [[ $load == bulk ]]; then
				printf '  [%3d/%d] round %d %-9s %-11s %9s MB/s%s\n' "$run" "$runs" "$round" "$load" "$path" "$mbs" "$note"
			else
				printf '  [%3d/%d] round %d %-9s %-11s %9s req/s%s\n' "$run" "$runs" "$round" "$load" "$path" "$rps" "$note"
			fi
			if [[ -f $logged ]]; then
				head -n 5 "$logged" | sed 's/^/            logged: /'
			fi
		done
	done
	if [[ -n $cipher_test ]]; then
		"$cipher_test" -test.run '^$' -test.bench '^BenchmarkCipherPass$' -test.benchtime 1s |
			awk -v r="$round" '$1 ~ /^BenchmarkCipherPass/ { for (i = 2; i < NF; i++) if ($(i + 1) == "MB/s") printf "cipher - %d %.1f\n", r, 1e6 / $i }' >>"$results" ||
			failures+=("round $round: the cipher's pass (BenchmarkCipherPass) failed")
	fi
done

rm -rf bin/bench-raw
cp -r "$tmp/raw" bin/bench-raw

# field LOAD PATH N prints column N of the results of LOAD on PATH, one a round.
field() {
	awk -v l="$1" -v p="$2" -v f="$3" '$1 == l && $2 == p { print $f }' "$results"
}
median() {
	sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# cpu_per_unit LOAD PATH N prints, one a round, the CPU time in column N
# (clock ticks) in microseconds per request, or per MB read for bulk.
cpu_per_unit() {
	awk -v l="$1" -v p="$2" -v f="$3" -v tck="$CLK_TCK" '
	$1 == l && $2 == p {
		units = (l == "bulk") ? $9 : $8
		if (units > 0) printf "%.1f\n", $f * 1e6 / tck / units
	}' "$results"
}
total() {
	awk '{ s += $1 } END { print s + 0 }'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

# cpu_targets prints the CPU time targets of the tunnel over TLS against
# the medians: the gateway's per request within 1.1x plain's, its per MB in
# bulk within 1.1x (plain's + one pass of the TLS cipher, measured in the
# same rounds), and the agent's at most 50 us per keep-alive request and 80
# ms per 100 MiB in bulk.
cpu_targets() {
	contains tunnel "${paths[@]}" || return 0
	local load unit plain gw agent cipher goal header=
	for load in keepalive newconn bulk; do
		contains "$load" "${loads[@]}" || continue
		if [[ -z $header ]]; then
			header=1
			echo
			echo "CPU targets, tunnel over TLS (medians; the A/A ratio of the gateway's is the noise band):"
		fi
		case $load in
		keepalive) unit="keep-alive request" ;;
		newconn) unit="new connection" ;;
		bulk) unit="MB in bulk" ;;
		esac
		plain=$(cpu_per_unit "$load" plain 16 | median)
		gw=$(cpu_per_unit "$load" tunnel 16 | median)
		agent=$(paste -d' ' <(cpu_per_unit "$load" tunnel 17) <(cpu_per_unit "$load" tunnel 18) | awk '{ print $1 + $2 }' | median)
		if [[ $load == bulk ]]; then
			cipher=$(field cipher - 4 | median)
			goal=$(awk -v p="$plain" -v c="$cipher" 'BEGIN { printf "%.1f", 1.1 * (p + c) }')
			printf '  gateway per %-18s <= 1.1 x (plain %s + cipher %s) = %s us: %s us, %s' "$unit" "$plain" "$cipher" "$goal" "$gw" \
				"$(verdict "$gw" "$goal")"
		else
			goal=$(awk -v p="$plain" 'BEGIN { printf "%.1f", 1.1 * p }')
			printf '  gateway per %-18s <= 1.1 x plain %s = %s us: %s us (%sx), %s' "$unit" "$plain" "$goal" "$gw" \
				"$(ratio "$gw" "$plain")" "$(verdict "$gw" "$goal")"
		fi
		if contains aa "${paths[@]}"; then
			printf ' (A/A %sx)' "$(ratio "$(cpu_per_unit "$load" aa 16 | median)" "$plain")"
		fi
		echo
		case $load in
		keepalive) printf '  agent per keep-alive request   <= 50 us: %s us, %s\n' "$agent" "$(verdict "$agent" 50)" ;;
		bulk) printf '  agent per MB in bulk           <= 763 us (80 ms per 100 MiB): %s us, %s\n' "$agent" "$(verdict "$agent" 763)" ;;
		esac
	done
}
verdict() {
	awk -v v="$1" -v g="$2" 'BEGIN { print (v + 0 <= g + 0) ? "met" : "NOT met" }'
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	commit+=" (modified)"
fi
declare -A ratios
table() {
	local load path rps p50 p99 mbs metric base r errs ce re we te ne cpu_all cpu_gw cpu_agent
	echo "tildegate benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) CPUs, $ROUNDS rounds of $DURATION per load and path"
	echo "medians over rounds; ratio = req/s (MB/s for bulk) / plain's; errors are totals over rounds"
	echo "cpu = CPU microseconds per request (per MB for bulk): the whole machine, the gateway, the agent's user+system"
	for load in "${loads[@]}"; do
		echo
		echo "$load: $(load_title "$load")"
		printf '  %-12s %10s %9s %9s %9s %7s %9s %9s %13s  %s\n' path req/s p50-ms p99-ms MB/s ratio \
			cpu-all cpu-gw cpu-agent errors
		metric=4
		[[ $load == bulk ]] && metric=7
		base=$(field "$load" plain "$metric" | median)
		for path in "${paths[@]}"; do
			rps=$(field "$load" "$path" 4 | median)
			p50=$(field "$load" "$path" 5 | median)
			p99=$(field "$load" "$path" 6 | median)
			mbs=$(field "$load" "$path" 7 | median)
			r=$(ratio "$(field "$load" "$path" "$metric" | median)" "$base")
			ratios[$load.$path]=$r
			ce=$(field "$load" "$path" 10 | total)
			re=$(field "$load" "$path" 11 | total)
			we=$(field "$load" "$path" 12 | total)
			te=$(field "$load" "$path" 13 | total)
			ne=$(field "$load" "$path" 14 | total)
			cpu_all=$(cpu_per_unit "$load" "$path" 15 | median)
			cpu_gw=$(cpu_per_unit "$load" "$path" 16 | median)
			cpu_agent=-
			case $path in
			tunnel | tunnelplain)
				cpu_agent="$(cpu_per_unit "$load" "$path" 17 | median)+$(cpu_per_unit "$load" "$path" 18 | median)"
				;;
			esac
			errs=
			((ne == 0)) || errs+="non-2xx $ne, "
			((ce == 0)) || errs+="connect $ce, "
			((re == 0)) || errs+="read $re, "
			((we == 0)) || errs+="write $we, "
			((te == 0)) || errs+="timeout $te, "
			errs=${errs%, }
			printf '  %-12s %10.1f %9.2f %9.2f %9.1f %7s %9s %9s %13s  %s\n' "$path" "$rps" "$p50" "$p99" "$mbs" "$r" \
				"$cpu_all" "$cpu_gw" "$cpu_agent" "${errs:--}"
		done
		local lo hi
		lo=$(field "$load" plain "$metric" | sort -g | head -n1)
		hi=$(field "$load" plain "$metric" | sort -g | tail -n1)
		if [[ $load == bulk ]]; then
			printf '  plain MB/s over rounds: %s - %s' "$lo" "$hi"
		else
			printf '  plain req/s over rounds: %s - %s' "$lo" "$hi"
		fi
		if contains aa "${paths[@]}"; then
			printf '; noise band (A/A, aa/plain): %s' "${ratios[$load.aa]}"
		fi
		echo
	done

	local spec tload goal name header=
	for spec in keepalive:0.9:keep-alive newconn:0.9:new-connection bulk:0.8:bulk; do
		IFS=: read -r tload goal name <<<"$spec"
		contains "$tload" "${loads[@]}" || continue
		contains tunnel "${paths[@]}" || contains tunnelplain "${paths[@]}" || continue
		if [[ -z $header ]]; then
			header=1
			echo
			echo "targets (ratio to plain reverse_proxy; 'met' when the median ratio reaches the target):"
		fi
		printf '  %-15s >= %.2fx' "$name" "$goal"
		for path in tunnel tunnelplain; do
			contains "$path" "${paths[@]}" || continue
			r=${ratios[$tload.$path]}
			if awk -v r="$r" -v g="$goal" 'BEGIN { exit !(r != "-" && r + 0 >= g + 0) }'; then
				printf '   %s %sx met' "$path" "$r"
			else
				printf '   %s %sx NOT met' "$path" "$r"
			fi
		done
		if contains aa "${paths[@]}"; then
			printf '   (A/A %sx)' "${ratios[$tload.aa]}"
		fi
		echo
	done
	cpu_targets
	if ((${#failures[@]} > 0)); then
		echo
		echo "FAILED runs:"
		printf '  %s\n' "${failures[@]}"
	fi
}

echo
table | tee bin/bench-results.txt
echo
echo "bench: table saved to bin/bench-results.txt, raw wrk outputs in bin/bench-raw/"
if ((${#failures[@]} > 0)); then
	exit 1
fi
