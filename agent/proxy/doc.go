// Package proxy reaches a gateway through a chain of HTTP proxies, as the
// " -> " part of a backbalance.bin entry describes, or through the proxy
// that HTTPS_PROXY names when the entry has none.
//
// Each proxy is asked with CONNECT for the next one, the last for the
// gateway; the caller starts TLS with the gateway inside the tunnel, so the
// proxies see only the gateway's address. A proxy may want no login, Basic
// or NTLM. The package does not import Caddy.
package proxy
