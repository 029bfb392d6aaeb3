// Command ntlmhelper is a squid NTLM authentication helper for tests. It
// sends well-formed NTLMv2 CHALLENGE messages and checks the NTLMv2 responses
// of AUTHENTICATE messages against users given on the command line
// (-user 'DOMAIN\name:password', repeatable; an empty DOMAIN is allowed) or
// in a file (-users FILE, one such entry a line).
//
// squid runs it with `auth_param ntlm program`. It speaks squid's stateful
// helper protocol on stdin and stdout, one line each way:
//
//	YR <base64 NEGOTIATE>     ->  TT <base64 CHALLENGE>
//	KK <base64 AUTHENTICATE>  ->  AF <user>, or NA <reason>
//
// Unlike squid's ntlm_fake_auth it refuses wrong passwords, unknown users and
// NTLMv1 responses. Rejections are explained on stderr (squid's cache.log).
package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"unicode/utf16"

	//lint:ignore SA1019 NTLM hashes passwords with MD4; the helper must too.
	"golang.org/x/crypto/md4"
)

// NTLM negotiate flags used in the CHALLENGE (MS-NLMP 2.2.2.5).
const (
	flagUnicode          = 0x00000001
	flagRequestTarget    = 0x00000004
	flagNTLM             = 0x00000200
	flagAlwaysSign       = 0x00008000
	flagTargetDomain     = 0x00010000
	flagExtendedSecurity = 0x00080000
	flagTargetInfo       = 0x00800000
	flagVersion          = 0x02000000
	flag128              = 0x20000000
	flag56               = 0x80000000
)

// AV_PAIR ids (MS-NLMP 2.2.2.1).
const (
	avEOL             = 0
	avNbComputerName  = 1
	avNbDomainName    = 2
	avDNSComputerName = 3
	avDNSDomainName   = 4
)

var signature = []byte("NTLMSSP\x00")

// user is an account the helper accepts.
type user struct{ domain, name, password string }

// server holds the accounts and the state of one NTLM exchange: squid keeps
// a stateful helper reserved from YR to the final KK of a connection.
type server struct {
	users     []user
	domain    string // NetBIOS domain and TargetName of the CHALLENGE
	computer  string // NetBIOS computer name
	challenge []byte // the last server challenge sent, nil when none
}

// parseUser reads `DOMAIN\name:password` or `name:password`.
func parseUser(s string) (user, error) {
	id, password, ok := strings.Cut(s, ":")
	if !ok {
		return user{}, fmt.Errorf("user %q: want DOMAIN\\name:password", strings.SplitN(s, ":", 2)[0])
	}
	var u user
	if domain, name, found := strings.Cut(id, `\`); found {
		u.domain, u.name = domain, name
	} else {
		u.name = id
	}
	if u.name == "" {
		return user{}, errors.New("user with an empty name")
	}
	u.password = password
	return u, nil
}

type userFlags []user

func (f *userFlags) String() string { return fmt.Sprintf("%d users", len(*f)) }

func (f *userFlags) Set(s string) error {
	u, err := parseUser(s)
	if err != nil {
		return err
	}
	*f = append(*f, u)
	return nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("ntlmhelper: ")
	var users userFlags
	flag.Var(&users, "user", `an accepted account, DOMAIN\name:password (repeatable; DOMAIN may be empty)`)
	usersFile := flag.String("users", "", "a file of accounts, one DOMAIN\\name:password a line")
	domain := flag.String("domain", "TESTDOMAIN", "NetBIOS domain sent in the CHALLENGE")
	computer := flag.String("computer", "TESTPROXY", "NetBIOS computer name sent in the CHALLENGE")
	flag.Parse()
	if *usersFile != "" {
		b, err := os.ReadFile(*usersFile)
		if err != nil {
			log.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimRight(line, "\r")
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := users.Set(line); err != nil {
				log.Fatalf("%s: %v", *usersFile, err)
			}
		}
	}
	s := &server{users: users, domain: *domain, computer: *computer}
	if err := s.serve(os.Stdin, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// serve answers squid's requests until stdin ends.
func (s *server) serve(in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	w := bufio.NewWriter(out)
	for sc.Scan() {
		if _, err := fmt.Fprintln(w, s.answer(sc.Text())); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// answer is the reply to one request line.
func (s *server) answer(line string) string {
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(arg))
	if err != nil || len(msg) < 12 || !bytes.Equal(msg[:8], signature) {
		return "BH not an NTLM message"
	}
	typ := binary.LittleEndian.Uint32(msg[8:12])
	switch {
	case (cmd == "YR" || cmd == "KK") && typ == 1:
		ch, err := s.newChallenge()
		if err != nil {
			return "BH " + err.Error()
		}
		return "TT " + base64.StdEncoding.EncodeToString(ch)
	case cmd == "KK" && typ == 3:
		name, err := s.authenticate(msg)
		s.challenge = nil
		if err != nil {
			log.Printf("rejected: %v", err)
			return "NA " + err.Error()
		}
		return "AF " + name
	default:
		return fmt.Sprintf("BH unexpected %s with NTLM message type %d", cmd, typ)
	}
}

// newChallenge makes a CHALLENGE with a fresh 8-byte server challenge.
func (s *server) newChallenge() ([]byte, error) {
	s.challenge = make([]byte, 8)
	if _, err := rand.Read(s.challenge); err != nil {
		return nil, err
	}
	return challengeMessage(s.challenge, s.domain, s.computer), nil
}

// challengeMessage is a CHALLENGE (MS-NLMP 2.2.1.2) for NTLMv2 with Unicode
// strings: a 56-byte header with the version, then TargetName, then
// TargetInfo.
func challengeMessage(serverChallenge []byte, domain, computer string) []byte {
	const headerLen = 56
	targetName := utf16le(domain)
	var info bytes.Buffer
	for _, av := range []struct {
		id    uint16
		value string
	}{
		{avNbDomainName, domain},
		{avNbComputerName, computer},
		{avDNSDomainName, strings.ToLower(domain) + ".test"},
		{avDNSComputerName, strings.ToLower(computer) + "." + strings.ToLower(domain) + ".test"},
	} {
		v := utf16le(av.value)
		_ = binary.Write(&info, binary.LittleEndian, [2]uint16{av.id, uint16(len(v))})
		info.Write(v)
	}
	_ = binary.Write(&info, binary.LittleEndian, [2]uint16{avEOL, 0})

	b := make([]byte, headerLen, headerLen+len(targetName)+info.Len())
	copy(b, signature)
	binary.LittleEndian.PutUint32(b[8:], 2)
	putField(b[12:], len(targetName), headerLen)
	flags := uint32(flagUnicode | flagRequestTarget | flagNTLM | flagAlwaysSign | flagTargetDomain |
		flagExtendedSecurity | flagTargetInfo | flagVersion | flag128 | flag56)
	binary.LittleEndian.PutUint32(b[20:], flags)
	copy(b[24:32], serverChallenge)
	// b[32:40] is reserved, zero.
	putField(b[40:], info.Len(), headerLen+len(targetName))
	// Version: 10.0 build 19041, NTLMSSP revision 15.
	copy(b[48:56], []byte{10, 0, 0x61, 0x4a, 0, 0, 0, 15})
	b = append(b, targetName...)
	return append(b, info.Bytes()...)
}

// putField writes a message field's length, maximum length and offset.
func putField(b []byte, length, offset int) {
	binary.LittleEndian.PutUint16(b[0:], uint16(length))
	binary.LittleEndian.PutUint16(b[2:], uint16(length))
	binary.LittleEndian.PutUint32(b[4:], uint32(offset))
}

// field reads the payload of the message field at b[at:at+8].
func field(msg []byte, at int) ([]byte, error) {
	if len(msg) < at+8 {
		return nil, errors.New("message too short")
	}
	length := int(binary.LittleEndian.Uint16(msg[at:]))
	offset := int(binary.LittleEndian.Uint32(msg[at+4:]))
	if offset < 0 || offset+length > len(msg) {
		return nil, fmt.Errorf("field at %d extends beyond the message", at)
	}
	return msg[offset : offset+length], nil
}

// authenticate checks an AUTHENTICATE (MS-NLMP 2.2.1.3) against the last
// challenge and returns the user's name as squid should log it.
func (s *server) authenticate(msg []byte) (string, error) {
	if s.challenge == nil {
		return "", errors.New("AUTHENTICATE without a CHALLENGE")
	}
	if len(msg) < 64 {
		return "", errors.New("AUTHENTICATE too short")
	}
	flags := binary.LittleEndian.Uint32(msg[60:])
	if flags&flagUnicode == 0 {
		return "", errors.New("AUTHENTICATE without Unicode strings")
	}
	ntResponse, err := field(msg, 20)
	if err != nil {
		return "", err
	}
	domainField, err := field(msg, 28)
	if err != nil {
		return "", err
	}
	nameField, err := field(msg, 36)
	if err != nil {
		return "", err
	}
	domain, name := fromUTF16le(domainField), fromUTF16le(nameField)
	who := name
	if domain != "" {
		who = domain + `\` + name
	}
	if len(ntResponse) <= 24 {
		return "", fmt.Errorf("%s: NTLMv1 or anonymous response, NTLMv2 required", who)
	}
	if ntResponse[16] != 1 || ntResponse[17] != 1 {
		return "", fmt.Errorf("%s: NTLMv2 blob has a wrong signature", who)
	}
	var u *user
	for i := range s.users {
		if strings.EqualFold(s.users[i].name, name) && strings.EqualFold(s.users[i].domain, domain) {
			u = &s.users[i]
			break
		}
	}
	if u == nil {
		return "", fmt.Errorf("%s: unknown user", who)
	}
	proof := ntProofStr(ntowfv2(u.password, name, domain), s.challenge, ntResponse[16:])
	if !hmac.Equal(proof, ntResponse[:16]) {
		return "", fmt.Errorf("%s: wrong password", who)
	}
	return who, nil
}

// ntowfv2 is HMAC-MD5(MD4(UTF16LE(password)), UTF16LE(UPPER(user) + domain)).
func ntowfv2(password, name, domain string) []byte {
	h := md4.New()
	h.Write(utf16le(password))
	return hmacMD5(h.Sum(nil), utf16le(strings.ToUpper(name)+domain))
}

// ntProofStr is HMAC-MD5(NTOWFv2, serverChallenge + blob).
func ntProofStr(key, serverChallenge, blob []byte) []byte {
	return hmacMD5(key, serverChallenge, blob)
}

func hmacMD5(key []byte, data ...[]byte) []byte {
	m := hmac.New(md5.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func fromUTF16le(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}
