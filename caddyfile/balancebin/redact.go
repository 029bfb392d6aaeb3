package balancebin

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// hidden stands in an Error for input text that may be a password.
const hidden = "***"

// syntaxWords are the words of the syntax that an Error may quote even
// where a password could stand: they say more than "***" and give nothing
// away.
var syntaxWords = []string{"->", "=>", rdpPort, "//"}

// redact returns found, the offending text at byte off of the text, as an
// Error may quote it. Passwords stand after an entry's "=": the entry's
// own and those of proxy logins, and, when a "#" or "=" is missing or
// mistyped, anything after it may be one. So a text that goes past what
// visible allows is cut there and ends with hidden, unless it is a single
// character or a word of the syntax. Text that is not the input's, such as
// the end of a line, is kept.
func (s *segment) redact(off int, found string) string {
	if s.public || off > len(s.text) || !strings.HasPrefix(s.text[off:], found) ||
		utf8.RuneCountInString(found) <= 1 || slices.Contains(syntaxWords, found) {
		return found
	}
	vis := s.visible()
	switch {
	case off+len(found) <= vis:
		return found
	case off < vis:
		return found[:vis-off] + hidden
	}
	return hidden
}

// visible returns the length of the start of the text that errors may
// quote: the head up to its "=" when the entry starts with one
// ([ keyword blanks ] "/~~" name "="), or else, on an entry that starts its
// line, the mistyped head before the first "=" when it holds a "~" (such
// as "/~name=" or "~~name="). An entry that follows another on its line
// without a head may be the rest of a password that holds a ";": none of
// it is quoted.
func (s *segment) visible() int {
	t := s.text
	if n := headLength(t); n > 0 {
		return n
	}
	if s.follows {
		return 0
	}
	end := 0
	for end < len(t) && (isNameChar(t[end]) || isBlank(t[end]) || t[end] == '/' || t[end] == '~') {
		end++
	}
	if end == len(t) || t[end] != '=' || !strings.Contains(t[:end], "~") {
		return 0
	}
	return end + 1
}

// headLength returns the length of the head that starts t, up to and
// including its "=": an optional word of keyword characters and blanks,
// then "/~~", a name and "=". It returns 0 when t does not start so.
func headLength(t string) int {
	p := 0
	for p < len(t) && isKeywordChar(t[p]) {
		p++
	}
	if p > 0 {
		if p == len(t) || !isBlank(t[p]) {
			return 0
		}
		for p < len(t) && isBlank(t[p]) {
			p++
		}
	}
	if !strings.HasPrefix(t[p:], marker) {
		return 0
	}
	p += len(marker)
	start := p
	for p < len(t) && isNameChar(t[p]) {
		p++
	}
	if p == start || p == len(t) || t[p] != '=' {
		return 0
	}
	return p + 1
}
