// Package agent is the subserver half of tildegate: for each entry of
// backbalance.bin it dials out to the gateway, holds an authenticated
// control connection under the entry's name at each address of the
// gateway's host (one per gateway instance), and opens back connections
// to the gateway that asks for them, copying the bytes of their sessions
// to and from the local service. docs/protocol.md describes the protocol; the
// package wire implements its encoding, keys and proofs.
//
// The package does not import Caddy, so the agent stays small and builds
// for every platform Go supports.
package agent
