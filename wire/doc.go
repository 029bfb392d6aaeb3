// Package wire is tildegate's back-connection protocol, shared by the
// gateway's broker and the agent: the upgrade request that opens a
// connection, the frames of the control connection, the keys and proofs of
// the handshake, and the codes of refusals. docs/protocol.md describes it
// for other implementations; this package has no Caddy import, so the agent
// can link it.
package wire
