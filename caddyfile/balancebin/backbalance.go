package balancebin

import "strings"

// Separators of backbalance.bin.
const (
	proxySep = " -> "              // before each proxy
	localSep = " => "              // before the local service
	rdpSep   = " " + rdpPort + " " // before the RDP service
)

// What may follow the gateway, a proxy or the local service.
const (
	expectAfterHop   = `" -> ", " => ", " RDPPORT " or ";"`
	expectAfterLocal = `" RDPPORT " or ";"`
)

// The services of an entry that names none.
var (
	defaultLocal = HostPort{Host: "127.0.0.1", Port: 80}
	defaultRDP   = HostPort{Host: "127.0.0.1", Port: 3389}
)

// BackEntry is one line of backbalance.bin: how a subserver registers with
// the gateway under Name.
type BackEntry struct {
	// Pos is the position of the entry's first character.
	Pos Position
	// TLS is true when the entry starts with "SSL ".
	TLS bool
	// Name is the server name as written; see Key.
	Name string
	// Password is everything between "=" and the "#" before the gateway.
	Password string
	// Gateway is the address of the gateway.
	Gateway HostPort
	// Proxies are the HTTP proxies to go through, in order.
	Proxies []Proxy
	// Local is the service to expose, 127.0.0.1:80 when the entry names
	// none.
	Local HostPort
	// LocalSet is true when the entry names its local service.
	LocalSet bool
	// RDP is the RDP service that native RDP through the gateway reaches,
	// 127.0.0.1:3389 when the entry names none.
	RDP HostPort
	// RDPSet is true when the entry names its RDP service.
	RDPSet bool
}

// Key returns the name in lower case, the form in which names compare.
func (e BackEntry) Key() string { return strings.ToLower(e.Name) }

// UseTLS reports whether the connection to the gateway uses TLS: when the
// entry starts with "SSL " or the gateway port is 443.
func (e BackEntry) UseTLS() bool { return e.TLS || e.Gateway.Port == 443 }

// ParseBack reads the content of a backbalance.bin file; file names it in
// positions. It returns the entries in file order, or an *Error for the
// first malformed one.
//
// The password ends at the last "#" before the first " -> ": it may hold
// "#", " => " and " RDPPORT ", but not " -> ". After it, the RDP service
// follows the last " RDPPORT ", the local service the last " => " before
// it, and the proxies are separated by " -> ".
func ParseBack(file string, data []byte) ([]BackEntry, error) {
	var entries []BackEntry
	for _, s := range split(file, data) {
		e, err := s.backEntry()
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// backEntry parses a backbalance.bin entry.
func (s *segment) backEntry() (BackEntry, error) {
	kw, off, err := s.lead([]string{"SSL"}, `"SSL"`)
	if err != nil {
		return BackEntry{}, err
	}
	name, off, err := s.name(off)
	if err != nil {
		return BackEntry{}, err
	}
	e := BackEntry{Pos: s.pos, TLS: kw != "", Name: name}
	end := s.trimEnd(off)
	// The suffixes are looked for only after the password, which may hold
	// their separators and must never show in an error.
	tail := s.passwordEnd(off, end)
	if strings.HasSuffix(s.text[tail:end], " "+rdpPort) {
		p := s.skipBlanks(end, len(s.text))
		return BackEntry{}, s.fail(p, s.found(p), `the RDP service (host:port) after "RDPPORT"`)
	}
	rdp, rdpStart, err := s.suffix(tail, end, rdpSep, `";"`, defaultRDP)
	if err != nil {
		return BackEntry{}, err
	}
	e.RDP, e.RDPSet = rdp, rdpStart < end
	local, rest, err := s.suffix(tail, rdpStart, localSep, expectAfterLocal, defaultLocal)
	if err != nil {
		return BackEntry{}, err
	}
	e.Local, e.LocalSet = local, rest < rdpStart
	if err := s.gateway(&e, off, rest); err != nil {
		return BackEntry{}, err
	}
	if err := s.terminated(); err != nil {
		return BackEntry{}, err
	}
	return e, nil
}

// passwordEnd returns where the password that starts at off ends: at the
// last "#" before the first " -> ", or off if there is no "#". Addresses
// and the suffixes hold no "#".
func (s *segment) passwordEnd(off, end int) int {
	if j := strings.Index(s.text[off:end], proxySep); j >= 0 {
		end = off + j
	}
	if h := strings.LastIndexByte(s.text[off:end], '#'); h >= 0 {
		return off + h
	}
	return off
}

// gateway parses password "#" gateway { " -> " proxy } between off and end.
// The password ends at the last "#" before the first " -> ".
func (s *segment) gateway(e *BackEntry, off, end int) error {
	ge := end // end of the gateway address
	if j := strings.Index(s.text[off:end], proxySep); j >= 0 {
		ge = off + j
	}
	h := strings.LastIndexByte(s.text[off:ge], '#')
	switch {
	case h < 0:
		return s.fail(ge, s.found(ge), `"#" followed by the gateway address`)
	case h == 0:
		return s.fail(off, "#", `a password before "#"`)
	}
	e.Password = s.text[off : off+h]
	gw, p, err := s.hostPort(off+h+1, ge)
	if err != nil {
		return err
	}
	if err := s.finish(p, ge, expectAfterHop); err != nil {
		return err
	}
	e.Gateway = gw
	for p := ge; p < end; {
		ps := p + len(proxySep) // start of the proxy
		pe := end
		if j := strings.Index(s.text[ps:end], proxySep); j >= 0 {
			pe = ps + j
		}
		px, err := s.proxy(ps, pe)
		if err != nil {
			return err
		}
		e.Proxies = append(e.Proxies, px)
		p = pe
	}
	return nil
}

// suffix parses the last sep host:port between off and end, which nothing
// but blanks may follow up to end, or else what expect names. It returns
// the address and where sep starts, or def and end when there is no sep.
func (s *segment) suffix(off, end int, sep, expect string, def HostPort) (HostPort, int, error) {
	k := strings.LastIndex(s.text[off:end], sep)
	if k < 0 {
		return def, end, nil
	}
	hp, p, err := s.hostPort(off+k+len(sep), end)
	if err != nil {
		return HostPort{}, 0, err
	}
	return hp, off + k, s.finish(p, end, expect)
}
