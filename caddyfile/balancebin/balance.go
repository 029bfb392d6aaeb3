package balancebin

import "strings"

// rdpPort is the word that marks a direct entry as an RDP port.
const rdpPort = "RDPPORT"

// Entry is one line of balance.bin.
//
// A direct entry (Back false) sends the requests for Name to Target. A
// back entry (Back true) waits for a subserver that registers with Name and
// Password; Filter and BackPort say what followed "#:".
type Entry struct {
	// Pos is the position of the entry's first character.
	Pos Position
	// TLS is the keyword before "/~~", KeywordNone when there is none. On
	// a back entry it means the tunnel must use TLS.
	TLS TLSKeyword
	// Name is the server name as written; names compare case-insensitively,
	// see Key.
	Name string
	// Target is the server of a direct entry.
	Target HostPort
	// RDP is true when a direct entry ends with " RDPPORT".
	RDP bool
	// Back is true for a back entry.
	Back bool
	// Password is the password of a back entry: everything between "=" and
	// the last "#".
	Password string
	// BackPort is the port of a back entry written in the port form
	// ("#:1"), zero in the "*" form. It is not used.
	BackPort uint16
	// Filter restricts the addresses a back entry accepts.
	Filter Filter
}

// Key returns the name in lower case, the form in which names compare.
func (e Entry) Key() string { return strings.ToLower(e.Name) }

// Parse reads the content of a balance.bin file; file names it in
// positions. It returns the entries in file order, duplicates included, or
// an *Error for the first malformed one.
func Parse(file string, data []byte) ([]Entry, error) {
	var entries []Entry
	for _, s := range split(file, data) {
		e, err := s.entry()
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// entry parses a balance.bin entry.
func (s *segment) entry() (Entry, error) {
	kw, off, err := s.lead(tlsKeywords, "a TLS keyword (SSL, SSL_STRICT, SSL_JVM_TM or SSL_JVM_TM_STRICT)")
	if err != nil {
		return Entry{}, err
	}
	name, off, err := s.name(off)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Pos: s.pos, TLS: TLSKeyword(kw), Name: name}
	end := s.trimEnd(off)
	if h := strings.LastIndexByte(s.text[off:end], '#'); h >= 0 {
		err = s.back(&e, off, off+h, end)
	} else {
		err = s.direct(&e, off, end)
	}
	if err != nil {
		return Entry{}, err
	}
	if err := s.terminated(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// direct parses the target of a direct entry, between off and end.
func (s *segment) direct(e *Entry, off, end int) error {
	hp, p, err := s.hostPort(off, end)
	if err != nil {
		return err
	}
	e.Target = hp
	if p = s.skipBlanks(p, end); p == end {
		return nil
	}
	if s.word(p) != rdpPort {
		return s.fail(p, s.word(p), `"RDPPORT" or ";"`)
	}
	e.RDP = true
	return s.finish(p+len(rdpPort), end, `";"`)
}

// back parses the target of a back entry, between off and end, whose last
// "#" is at h.
func (s *segment) back(e *Entry, off, h, end int) error {
	e.Back = true
	if h == off {
		return s.fail(h, "#", `a password before "#"`)
	}
	e.Password = s.text[off:h]
	p := h + 1
	if p == end || s.text[p] != ':' {
		return s.fail(p, s.found(p), `":"`)
	}
	p++
	if p < end && s.text[p] == '*' {
		p++
		q := p
		for q < end && !isBlank(s.text[q]) {
			q++
		}
		e.Filter = Filter{Star: true}
		if q > p {
			f, err := s.filter(p, q)
			if err != nil {
				return err
			}
			e.Filter = f
		}
		p = q
	} else {
		port, q, err := s.port(p, end)
		if err != nil {
			return err
		}
		e.BackPort = port
		p = q
	}
	if p = s.skipBlanks(p, end); p < end && s.word(p) == rdpPort {
		return s.fail(p, rdpPort, `";" (RDPPORT is not allowed on a back entry)`)
	}
	return s.finish(p, end, `";"`)
}
