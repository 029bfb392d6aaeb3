package main

import (
	"fmt"
	"os"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// load reads and parses the backbalance.bin file at path. A parse error
// says file:line:column.
func load(path string) ([]balancebin.BackEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	entries, err := balancebin.ParseBack(path, data)
	if err != nil {
		return nil, err
	}
	return entries, nil
}
