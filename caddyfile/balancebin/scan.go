package balancebin

import (
	"strings"
	"unicode/utf8"
)

// byteOrderMark may start a file; it is ignored.
const byteOrderMark = "\uFEFF"

// segment is the text of one entry, from its first non-blank character up
// to, not including, its terminating ";". An entry never spans lines, so the
// whole text lies on the line of pos.
type segment struct {
	text string
	pos  Position // position of text[0]
	// end is what stopped the entry: ";" when it is terminated, "\n" when
	// its line ended first and "" when nothing but blanks follows it up to
	// the end of the file. It is an Error.Found value.
	end string
	// follows is true when another entry stands before this one on its
	// line.
	follows bool
	// public is true when the text can hold no password, such as a filter
	// on its own: errors quote it as it is.
	public bool
}

// split cuts data into entries. It drops a leading byte order mark, the
// blanks between entries and the comment lines. Every entry gets a segment,
// even when it lacks its ";": the parsers report that after its content.
func split(file string, data []byte) []segment {
	src := strings.TrimPrefix(string(data), byteOrderMark)
	tail := len(strings.TrimRight(src, " \t\r\n")) // end of the last non-blank
	var segs []segment
	line := 1
	colOff, col := 0, 1 // column col is at byte colOff of the current line
	lineStart := true   // nothing but blanks so far on the current line
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			i++
			line, colOff, col, lineStart = line+1, i, 1, true
			continue
		case isBlank(c) || c == '\r':
			i++
			continue
		case lineStart && (c == '#' || strings.HasPrefix(src[i:], "//")):
			if j := strings.IndexByte(src[i:], '\n'); j >= 0 {
				i += j
			} else {
				i = len(src)
			}
			continue
		}
		follows := !lineStart
		lineStart = false
		col += utf8.RuneCountInString(src[colOff:i])
		colOff = i
		j := strings.IndexAny(src[i:], ";\r\n")
		if j < 0 {
			j = len(src)
		} else {
			j += i
		}
		s := segment{text: src[i:j], pos: Position{File: file, Line: line, Column: col}, follows: follows}
		switch {
		case j < len(src) && src[j] == ';':
			s.end = ";"
			j++
		case j >= tail:
			s.end = ""
		default:
			s.end = "\n"
		}
		segs = append(segs, s)
		i = j
	}
	return segs
}

// isBlank reports whether c is a space or a tab.
func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// at returns the position of byte off of the text.
func (s *segment) at(off int) Position {
	p := s.pos
	p.Column += utf8.RuneCountInString(s.text[:off])
	return p
}

// found returns what lies at byte off: the character there, or what ended
// the entry when off is past its text.
func (s *segment) found(off int) string {
	if off >= len(s.text) {
		return s.end
	}
	_, n := utf8.DecodeRuneInString(s.text[off:])
	return s.text[off : off+n]
}

// word returns the text from off up to the next blank, or what found
// returns when there is none.
func (s *segment) word(off int) string {
	end := off
	for end < len(s.text) && !isBlank(s.text[end]) {
		end++
	}
	if end == off {
		return s.found(off)
	}
	return s.text[off:end]
}

// fail returns an *Error at byte off of the text, where found stands. The
// error never quotes what may be a password; see redact.
func (s *segment) fail(off int, found, expected string) error {
	return &Error{Pos: s.at(off), Found: shorten(s.redact(off, found)), Expected: expected}
}

// skipBlanks returns the offset of the first non-blank at or after off,
// or end.
func (s *segment) skipBlanks(off, end int) int {
	for off < end && isBlank(s.text[off]) {
		off++
	}
	return off
}

// trimEnd returns the end of the text without its trailing blanks, at least
// off.
func (s *segment) trimEnd(off int) int {
	end := len(s.text)
	for end > off && isBlank(s.text[end-1]) {
		end--
	}
	return end
}

// finish checks that only blanks stand between off and end.
func (s *segment) finish(off, end int, expected string) error {
	if off = s.skipBlanks(off, end); off < end {
		return s.fail(off, s.word(off), expected)
	}
	return nil
}

// terminated checks that the entry ended with ";".
func (s *segment) terminated() error {
	if s.end != ";" {
		return s.fail(len(s.text), s.end, `";"`)
	}
	return nil
}
