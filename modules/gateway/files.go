package gateway

import (
	"bytes"
	"fmt"
	"os"

	"github.com/tildegate/tildegate/caddyfile/balancebin"
)

// fileSet holds the last good content of each balance file.
type fileSet struct {
	paths   []string
	content [][]byte
	parsed  [][]balancebin.Entry
}

func newFileSet(paths []string) *fileSet {
	return &fileSet{
		paths:   paths,
		content: make([][]byte, len(paths)),
		parsed:  make([][]balancebin.Entry, len(paths)),
	}
}

// read reads and parses every file. Either all files are good and the set
// takes them, or it keeps what it had and returns the first error. changed
// reports whether any file's content differs from the last good one.
func (fs *fileSet) read() (changed bool, err error) {
	content := make([][]byte, len(fs.paths))
	parsed := make([][]balancebin.Entry, len(fs.paths))
	for i, path := range fs.paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return false, fmt.Errorf("reading balance file: %w", err)
		}
		if fs.content[i] != nil && bytes.Equal(data, fs.content[i]) {
			content[i], parsed[i] = fs.content[i], fs.parsed[i]
			continue
		}
		entries, err := balancebin.Parse(path, data)
		if err != nil {
			return false, err
		}
		content[i], parsed[i] = data, entries
		changed = true
	}
	fs.content, fs.parsed = content, parsed
	return changed, nil
}

// entries returns the parsed entries of each file, in the order of paths.
func (fs *fileSet) entries() [][]balancebin.Entry {
	return fs.parsed
}
