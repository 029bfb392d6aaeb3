// Package e2e is the harness of tildegate's end-to-end tests: it builds the
// Caddy and agent binaries, makes a TLS identity for the gateway, runs
// processes and watches their logs, and provides the gateway, agents and
// local services the tests put together. Only tests import it.
package e2e
