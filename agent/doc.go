// Package agent is the subserver half of tildegate: for each entry of
// backbalance.bin it dials out to the gateway, holds one authenticated
// control connection under the entry's name, and opens a back connection
// to the gateway for each ticket the gateway sends, copying its bytes to
// and from the local service. docs/protocol.md describes the protocol; the
// package wire implements its encoding, keys and proofs.
//
// The package does not import Caddy, so the agent stays small and builds
// for every platform Go supports.
package agent
