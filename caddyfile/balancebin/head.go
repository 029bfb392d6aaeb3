package balancebin

import (
	"slices"
	"strings"
)

// The head of an entry, shared by balance.bin and backbalance.bin:
// [ keyword blanks ] "/~~" name "=".
const (
	marker  = "/~~" // starts the name of every entry
	maxName = 64    // longest name, in characters
)

// isNameChar reports whether c may appear in an entry name.
func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

// isKeywordChar reports whether c may appear in a keyword such as SSL_STRICT.
func isKeywordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// lead reads what comes before the name: an optional keyword out of
// keywords, blanks and "/~~". It returns the keyword, "" when there is
// none, and the offset of the name. badKeyword describes the keywords.
func (s *segment) lead(keywords []string, badKeyword string) (string, int, error) {
	t := s.text
	switch {
	case strings.HasPrefix(t, marker):
		return "", len(marker), nil
	case strings.HasPrefix(t, "#") || strings.HasPrefix(t, "//"):
		return "", 0, s.fail(0, s.word(0), `"/~~" (a comment must start its line)`)
	}
	w := 0
	for w < len(t) && isKeywordChar(t[w]) {
		w++
	}
	known := slices.Contains(keywords, t[:w])
	switch {
	case w > 0 && w < len(t) && isBlank(t[w]):
		if !known {
			return "", 0, s.fail(0, t[:w], badKeyword)
		}
		off := s.skipBlanks(w, len(t))
		if !strings.HasPrefix(t[off:], marker) {
			return "", 0, s.fail(off, s.word(off), `"/~~"`)
		}
		return t[:w], off + len(marker), nil
	case known:
		return "", 0, s.fail(w, s.found(w), `" "`)
	}
	return "", 0, s.fail(0, s.word(0), `"/~~"`)
}

// name reads an entry name and the "=" after it, starting at off. It
// returns the name and the offset after "=".
func (s *segment) name(off int) (string, int, error) {
	t := s.text
	start := off
	for off < len(t) && isNameChar(t[off]) {
		off++
	}
	switch {
	case off == start:
		return "", 0, s.fail(off, s.found(off), `a name (letters, digits, "-", "_" or ".")`)
	case off-start > maxName:
		return "", 0, s.fail(start+maxName, s.found(start+maxName), `"=" (a name has at most 64 characters)`)
	case off == len(t):
		return "", 0, s.fail(off, s.found(off), `"="`)
	case t[off] != '=':
		return "", 0, s.fail(off, s.found(off), `"=" or a name character (letter, digit, "-", "_" or ".")`)
	}
	return t[start:off], off + 1, nil
}
