package balancebin

import "strconv"

// Position is a place in a parsed file.
//
// Line and Column are 1-based. Column counts runes (UTF-8 characters, an
// invalid byte counting as one and a tab as one) from the start of the line;
// a byte order mark at the start of the file is not counted.
type Position struct {
	File         string
	Line, Column int
}

// String returns the position as "file:line:column", or "line:column" when
// File is empty.
func (p Position) String() string {
	s := strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Column)
	if p.File == "" {
		return s
	}
	return p.File + ":" + s
}
