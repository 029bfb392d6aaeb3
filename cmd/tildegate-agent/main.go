// Command tildegate-agent connects a subserver to a tildegate gateway.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "usage: tildegate-agent [flags]")
	fmt.Fprintln(os.Stderr, "tildegate-agent connects this server to a tildegate gateway; it is not implemented yet.")
	os.Exit(2)
}
