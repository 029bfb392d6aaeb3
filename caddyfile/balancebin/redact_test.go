package balancebin

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// checkNoSecret fails t unless err is an *Error with a position that
// quotes nothing of password: not the whole of it anywhere in the message,
// and in Found no part of it four bytes or longer that the line does not
// also hold outside the password.
func checkNoSecret(t *testing.T, file, line, password string, err error) {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("%q: error %v is a %T, not an *Error", line, err, err)
	}
	msg := err.Error()
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(file) + `:[0-9]+:[0-9]+: found .+, expected .+`).MatchString(msg) {
		t.Errorf("%q: error %q does not say what and where", line, msg)
	}
	if strings.Contains(strings.TrimSuffix(msg, perr.Expected), password) {
		t.Fatalf("%q: error quotes the password %q: %s", line, password, msg)
	}
	outside := strings.ReplaceAll(line, password, "\x00")
	for n := 4; n <= len(password); n++ {
		for i := 0; i+n <= len(password); i++ {
			part := password[i : i+n]
			if strings.Contains(perr.Found, part) && !strings.Contains(outside, part) {
				t.Fatalf("%q: error quotes %q of the password %q: %s", line, part, password, msg)
			}
		}
	}
}

// passwords hold what makes entries hard to read: the separators of both
// files, blanks, digits that read as a host or port.
var passwords = []string{
	"S3cretPassw0rd",
	"pa#ss#word",
	"pa=ss=word",
	"pa;ssword1",
	"pass word x",
	"pass\tword",
	"pass -> word",
	"pass => word",
	"pass RDPPORT word",
	"123456789",
	"10.20.30.40",
	"[::1]:80x80",
	"~~pass=word",
	"pass@word:99",
	`dom\pass:word`,
}

func TestBalanceErrorsHidePasswords(t *testing.T) {
	lines := []string{
		"/~home=%s#1.2.3.4:80;",         // one "~"
		"~~home=%s#:*;",                 // no "/"
		"home=%s#:*;",                   // no "/~~"
		"/~~~home=%s#:*;",               // one "~" too many
		"SSLX /~~home=%s#:*;",           // unknown keyword
		"SSL  home=%s#:*;",              // keyword, no "/~~"
		"/~~home=%s#:*",                 // no ";"
		"/~~home=%s#:*\n/~~b=h:1;",      // no ";" before the next line
		"/~~home=%s#:99999;",            // bad port
		"/~~home=%s#:0;",                // bad port
		"/~~home=%s#:*1.2.3;",           // bad filter
		"/~~home=%s#:*51.254.*.1;",      // bad filter
		"/~~home=%s#:*home..net;",       // bad filter
		"/~~home=%s#:*;x;",              // stray entry
		"/~~home=%s#:* x;",              // stray characters
		"/~~home=%s#:*1.2.3.4 RDPPORT;", // RDPPORT on a back entry
		"/~~home=%s:*;",                 // no "#"
		"/~~home=%s;",                   // no "#:*"
		"/~~home=%s#*;",                 // no ":"
		"/~~home=%s##:x;",               // doubled "#"
		"/~~home=%s #:* ;x",             // blanks around
		"/~~home=%s#1.2.3.4:80;",        // a backbalance.bin entry
		"/~~home %s#:*;",                // no "="
		"/~~home:%s#:*;",                // ":" for "="
		"/~~home=[%s]:80;",              // as an IPv6 host
		"/~~home=%s RDPPORT;",           // as a direct entry
		"/~~a=1.2.3.4:80; %s#:*;",       // as an entry of its own
		"/~~a=1.2.3.4:80;%s;",           // as an entry of its own, no "#"
	}
	for _, pw := range passwords {
		for _, format := range lines {
			line := strings.Replace(format, "%s", pw, 1)
			_, err := Parse("balance.bin", []byte(line))
			if err == nil {
				t.Errorf("Parse(%q) succeeded", line)
				continue
			}
			checkNoSecret(t, "balance.bin", line, pw, err)
		}
	}
}

func TestBackErrorsHidePasswords(t *testing.T) {
	lines := []string{
		"/~home=%s#gw.example:443;",                           // one "~"
		"~~home=%s#gw:443;",                                   // no "/"
		"SSL/~~home=%s#gw:443;",                               // no blank after SSL
		"SSL_STRICT /~~home=%s#gw:443;",                       // balance.bin keyword
		"/~~home=%s#gw:443",                                   // no ";"
		"/~~home=%s#gw:99999;",                                // bad port
		"/~~home=%s#gw:4x3;",                                  // bad port
		"/~~home=%s#gw;",                                      // no port
		"/~~home=%s#1.2.3:443;",                               // bad address
		"/~~home=%s@gw:443;",                                  // no "#"
		"/~~home=%s gw:443;",                                  // blank for "#"
		"/~~home=%s#gw:443 x;",                                // stray characters
		"/~~home=%s#gw:443 RDPPORT;",                          // no RDP service
		"/~~home=%s#gw:443 RDPPORT 127.0.0.1;",                // RDP service without port
		"/~~home=%s#gw:443 => 127.0.0.1;",                     // local service without port
		"/~~home=%s#gw:443 => ;",                              // no local service
		"/~~home=pw#gw:443 -> user:%s@proxy;",                 // proxy without port
		"/~~home=pw#gw:443 -> user:%s@proxy:8080 x;",          // stray characters after a proxy
		"/~~home=pw#gw:443 -> user:%s@;",                      // no proxy address
		"/~~home=pw#gw:443 -> :%s@proxy:1;",                   // no proxy user
		"/~~home=pw#gw:443 -> dom\\:%s@proxy:1;",              // no NTLM user
		"/~~home=pw#gw:443 ->user:%s@proxy:1;",                // mistyped separator
		"/~~home=pw#gw:443 -> user:%s@proxy:1 -> ;",           // empty proxy
		"/~~home=pw#gw:443 -> user:%s@proxy:1 => 127.0.0.1;",  // local service without port
		"/~~home=pw#gw:443 -> user:%s@proxy:1=>127.0.0.1:80;", // mistyped separator
		"/~~home=%s#gw:443 -> user:%s@proxy:x;",               // both passwords
		"/~~home=%s#gw:443 -> user:pw@p:1 -> u:pw@q:2 -> ;",   // empty last proxy
		"/~~home %s#gw:443;",                                  // no "="
		"/~~a=pw#gw:443; %s#gw:443;",                          // as an entry of its own
	}
	for _, pw := range passwords {
		for _, format := range lines {
			line := strings.ReplaceAll(format, "%s", pw)
			_, err := ParseBack("backbalance.bin", []byte(line))
			if err == nil {
				t.Errorf("ParseBack(%q) succeeded", line)
				continue
			}
			checkNoSecret(t, "backbalance.bin", line, pw, err)
		}
	}
}

// TestMistypedLinesHidePasswords builds valid entries around random
// passwords, mistypes them around the password and checks that no error
// quotes it. The password itself is left as it is, and the "=" before it
// too when it holds a "=": without it the name would reach into the
// password, as the syntax reads it. Line breaks are not typed: an entry
// never spans lines.
func TestMistypedLinesHidePasswords(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789#=;:@/~\\-> .*![]\t"
	typed := []string{"#", "=", ";", " ", ":", "@", "/", "~", "*", "-", ">", ".", "\t", "x", "9", "[", "]", " -> ", " => ", " RDPPORT ", "\\"}
	// randomPassword has 8 to 20 characters of the alphabet, and now and
	// then a separator.
	randomPassword := func() string {
		var b strings.Builder
		for n := 8 + rng.IntN(13); n > 0; n-- {
			if rng.IntN(8) == 0 {
				b.WriteString([]string{" -> ", " => ", " RDPPORT ", "#", "=", ";"}[rng.IntN(6)])
			}
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	errs := 0
	for i := range 20000 {
		pw := randomPassword()
		back := i%2 == 1
		var before, after string
		if back {
			before = []string{"", "SSL "}[rng.IntN(2)] + "/~~home="
			after = "#gw.example.com:443"
			for range rng.IntN(3) {
				after += " -> " + []string{"", "user:pw@", `dom\user:pw@`}[rng.IntN(3)] + "10.0.0.1:808"
			}
			if rng.IntN(2) == 0 {
				after += " => 127.0.0.1:8080"
			}
			if rng.IntN(2) == 0 {
				after += " RDPPORT 10.0.0.5:3389"
			}
		} else {
			before = []string{"", "SSL "}[rng.IntN(2)] + "/~~home="
			after = []string{"#:*", "#:1", "#:*51.254.*", "#:*1.2.3.4", "#:*home.example.net"}[rng.IntN(5)]
		}
		after += ";"
		for range 1 + rng.IntN(3) {
			inBefore := rng.IntN(len(before)+len(after)) < len(before)
			s := &after
			if inBefore {
				s = &before
			}
			pos := rng.IntN(len(*s) + 1)
			switch rng.IntN(3) {
			case 0: // insert
				*s = (*s)[:pos] + typed[rng.IntN(len(typed))] + (*s)[pos:]
			case 1, 2: // delete or replace
				if pos == len(*s) || inBefore && pos == len(before)-1 && strings.Contains(pw, "=") {
					continue
				}
				with := ""
				if rng.IntN(2) == 0 {
					with = typed[rng.IntN(len(typed))]
				}
				*s = (*s)[:pos] + with + (*s)[pos+1:]
			}
		}
		line := before + pw + after
		var err error
		file := "balance.bin"
		if back {
			file = "backbalance.bin"
			_, err = ParseBack(file, []byte(line))
		} else {
			_, err = Parse(file, []byte(line))
		}
		if err != nil {
			errs++
			checkNoSecret(t, file, line, pw, err)
		}
	}
	if errs < 10000 {
		t.Errorf("only %d of 20000 mistyped lines failed to parse: the test mistypes too little", errs)
	}
}
