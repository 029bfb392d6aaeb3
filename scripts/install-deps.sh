#!/usr/bin/env bash
# Installs the system packages that the tests and benchmarks use.
#
# Each entry of DEPS is "command:package": when the command is not found,
# the Debian package is installed. As root the script runs apt-get itself;
# otherwise it prints the command to run and fails.
set -euo pipefail

DEPS=(
	"squid:squid"                            # forward proxy for the agent's proxy tests
	"chromium:chromium"                      # headless browser of the status page test
	"wrk:wrk"                                # HTTP load generator for the benchmarks
	"xfreerdp:freerdp2-x11"                  # RDP client of the RDP tests
	"freerdp-shadow-cli:freerdp2-shadow-x11" # RDP server with NLA for the RDP tests
	"winpr-hash:winpr-utils"                 # NTLM hashes for the shadow server's users
	"xrdp:xrdp"                              # RDP server for the RDP tests
	"Xvfb:xvfb"                              # X display for the RDP client and the shadow server
	"systemd-analyze:systemd"                # checks the agent's systemd unit (verify, security)
)

# have reports whether a command is installed, also looking in the sbin
# directories, which are often missing from a normal user's PATH.
have() {
	command -v "$1" >/dev/null 2>&1 && return 0
	local dir
	for dir in /usr/local/sbin /usr/sbin /sbin; do
		[[ -x "$dir/$1" ]] && return 0
	done
	return 1
}

missing=()
for dep in "${DEPS[@]}"; do
	cmd=${dep%%:*}
	pkg=${dep#*:}
	if ! have "$cmd"; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all present"
	exit 0
fi

install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing Debian packages: ${missing[*]}; install them with this system's package manager" >&2
	exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: install them with:" >&2
	echo "    sudo apt-get update && sudo $install_cmd" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' system services (squid's, for one) from starting: the
# tests run their own instances on ports of their own.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

for dep in "${DEPS[@]}"; do
	cmd=${dep%%:*}
	if ! have "$cmd"; then
		echo "deps: $cmd is still missing after installing ${dep#*:}" >&2
		exit 1
	fi
done
echo "deps: done"
