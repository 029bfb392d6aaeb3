// Package tildegate gives a farm of servers one public entry point: a Caddy
// plugin that routes https://gateway/~~name/... to the server called name.
// Importing it registers all of tildegate's Caddy modules.
package tildegate

import (
	// The HTTP handler that routes /~~name requests.
	_ "github.com/tildegate/tildegate/modules/gateway"
	// The listener wrapper that routes native RDP on the web port.
	_ "github.com/tildegate/tildegate/modules/rdp"
)
