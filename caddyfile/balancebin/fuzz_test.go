package balancebin

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// checkError fails t unless err is an *Error at a position inside data.
func checkError(t *testing.T, data []byte, err error) {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("error %v is a %T, not an *Error", err, err)
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	if p := perr.Pos; p.Line < 1 || p.Line > lines || p.Column < 1 {
		t.Fatalf("error position %v outside the input of %d lines: %v", p, lines, err)
	}
	if perr.Expected == "" || perr.Error() == "" {
		t.Fatalf("incomplete error %#v", perr)
	}
}

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse("fuzz", data)
		if err != nil {
			checkError(t, data, err)
			return
		}
		checkRoundTrip(t, data, entries)
	})
}

func FuzzParseBack(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseBack("fuzz", data)
		if err != nil {
			checkError(t, data, err)
			return
		}
		checkBackRoundTrip(t, data, entries)
		for _, e := range entries {
			checkMasked(t, e)
		}
	})
}

// checkMasked fails t unless MaskedBack(e) reads back as e with every
// password masked.
func checkMasked(t *testing.T, e BackEntry) {
	t.Helper()
	masked := MaskedBack(e)
	got, err := ParseBack("masked", []byte(masked))
	if err != nil || len(got) != 1 {
		t.Fatalf("ParseBack(MaskedBack(%+v)) = %v, %v", e, got, err)
	}
	want := e
	want.Pos, got[0].Pos = Position{}, Position{}
	want.Password = mask
	want.Proxies = slices.Clone(e.Proxies)
	for i := range want.Proxies {
		if want.Proxies[i].Auth != ProxyAuthNone {
			want.Proxies[i].Password = mask
		}
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Fatalf("MaskedBack(%+v) = %q, reads back as %+v", e, masked, got[0])
	}
}

// TestSeedCorpus checks that every grammar example is in the seed corpus of
// its fuzz test.
func TestSeedCorpus(t *testing.T) {
	for fuzzer, examples := range map[string][]string{
		"FuzzParse":     balanceExamples,
		"FuzzParseBack": backExamples,
	} {
		seeds := readCorpus(t, filepath.Join("testdata", "fuzz", fuzzer))
		for _, ex := range examples {
			if !slices.Contains(seeds, ex+"\n") {
				t.Errorf("%s: no seed holds %q", fuzzer, ex)
			}
		}
	}
}

// readCorpus returns the inputs of the corpus files in dir.
func readCorpus(t *testing.T, dir string) []string {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seeds []string
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a corpus file", f.Name())
		}
		quoted, ok := strings.CutPrefix(lines[1], "[]byte(")
		quoted, ok2 := strings.CutSuffix(quoted, ")")
		s, err := strconv.Unquote(quoted)
		if !ok || !ok2 || err != nil {
			t.Fatalf("%s: bad value %s", f.Name(), lines[1])
		}
		seeds = append(seeds, s)
	}
	return seeds
}
