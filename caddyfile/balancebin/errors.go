package balancebin

import (
	"strconv"
	"unicode/utf8"
)

// maxFound is the number of runes of offending text kept in Error.Found.
const maxFound = 32

// Error reports malformed input: what was found at a position and what was
// expected there. Parse and ParseBack return their errors as *Error.
type Error struct {
	// Pos is the position of the offending character.
	Pos Position
	// Found is the offending text as it stands in the input, shortened to
	// 32 runes followed by "..." when longer. Two values are special: ""
	// stands for the end of the file and "\n" for the end of a line.
	//
	// Found never quotes what may be a password: of the text after an
	// entry's "=", where passwords stand whatever the typo, it holds at
	// most one character or a word of the syntax ("->", "=>", "RDPPORT");
	// longer text there is replaced by "***". See hidden.
	Found string
	// Expected describes what would have been valid at Pos, for example
	// `";"` or "a port number (1-65535)".
	Expected string
}

// Error returns the error as "FILE:LINE:COL: found X, expected Y", with X
// quoted as by %q, or written as "end of file", "end of line" or, when all
// of it is hidden, "text not quoted in case it is a password".
func (e *Error) Error() string {
	return e.Pos.String() + ": found " + describe(e.Found) + ", expected " + e.Expected
}

// describe renders an Error.Found value for a message.
func describe(found string) string {
	switch found {
	case "":
		return "end of file"
	case "\n":
		return "end of line"
	case hidden:
		return "text not quoted in case it is a password"
	}
	return strconv.Quote(found)
}

// shorten cuts s to maxFound runes.
func shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxFound {
		return s
	}
	n := 0
	for i := range s {
		if n == maxFound {
			return s[:i] + "..."
		}
		n++
	}
	return s
}
