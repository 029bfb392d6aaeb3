package main

import (
	"runtime"
	"runtime/debug"
)

// version returns the module version the command was built from, or
// "devel" when it is not known.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return "devel"
	}
	return bi.Main.Version
}

// versionLine is what -version prints.
func versionLine() string {
	return "tildegate-agent " + version() + " " + runtime.Version()
}
