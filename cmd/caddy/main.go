// Command caddy is Caddy with its standard modules and tildegate, the same
// binary that xcaddy builds with --with github.com/tildegate/tildegate.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tildegate/tildegate"
)

func main() {
	caddycmd.Main()
}
