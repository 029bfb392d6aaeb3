package attack

import (
	"bufio"
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gtank/ristretto255"
	"github.com/tildegate/tildegate/internal/e2e"
	"github.com/tildegate/tildegate/wire"
)

// This file is the eavesdropper's toolbox: it parses what a relay
// recorded, and tries to recompute from a password and the public
// transcript alone anything the capture holds that proves knowledge of the
// password or of the session key. The derivations follow wire/ as
// published; cpaceHandshake uses the same code to register for real, which
// proves that the toolbox computes what the protocol computes, so that
// finding nothing in a capture means something.

// rawFrame is a frame as recorded: tag is empty for the untagged frames of
// the handshake.
type rawFrame struct {
	typ       byte
	body, tag []byte
}

// splitFrames cuts b into frames, the first untagged ones untagged and the
// rest tagged; an unfinished frame at the end is dropped.
func splitFrames(b []byte, untagged int) []rawFrame {
	var out []rawFrame
	for len(b) >= 3 {
		n := int(binary.BigEndian.Uint16(b[1:3]))
		if len(b) < 3+n {
			break
		}
		f := rawFrame{typ: b[0], body: b[3 : 3+n]}
		if len(out) >= untagged && n >= wire.TagSize {
			f.body, f.tag = b[3:3+n-wire.TagSize], b[3+n-wire.TagSize:3+n]
		}
		out = append(out, f)
		b = b[3+n:]
	}
	return out
}

// backCapture is one recorded back connection.
type backCapture struct {
	helloValue string
	hello      wire.Hello
	accept     []byte // the gateway's Tildegate-Proof
}

// capture is one recorded control connection and the back connections of
// its session.
type capture struct {
	name             string
	hello, challenge string
	helloF           wire.Hello
	challengeF       wire.Challenge
	ya, yb           []byte
	ta, tb           []byte
	resumeProof      []byte
	session          []byte
	fromAgent        []rawFrame // tagged frames after WELCOME
	fromGateway      []rawFrame
	backs            []backCapture
	raw              [][]byte // every recorded byte, to search for the password
}

// parseControl reads a recorded control connection.
func parseControl(name string, up, down []byte) (*capture, error) {
	c := &capture{name: name, raw: [][]byte{up, down}}
	ubr := bufio.NewReader(bytes.NewReader(up))
	req, err := http.ReadRequest(ubr)
	if err != nil {
		return nil, fmt.Errorf("the control request: %w", err)
	}
	c.hello = req.Header.Get(wire.HeaderHello)
	if c.helloF, err = wire.ParseHello(c.hello); err != nil {
		return nil, err
	}
	rest, _ := io.ReadAll(ubr)
	frames := splitFrames(rest, 1)
	if len(frames) == 0 || frames[0].typ != byte(wire.FrameAuth) {
		return nil, fmt.Errorf("no AUTH frame in %d bytes after the request", len(rest))
	}
	auth, err := wire.DecodeFrame(wire.FrameAuth, frames[0].body)
	if err != nil {
		return nil, err
	}
	c.ya, c.ta, c.resumeProof = auth.Share, auth.Confirmation, auth.ResumeProof
	c.fromAgent = frames[1:]

	dbr := bufio.NewReader(bytes.NewReader(down))
	res, err := http.ReadResponse(dbr, nil)
	if err != nil {
		return nil, fmt.Errorf("the control answer: %w", err)
	}
	c.challenge = res.Header.Get(wire.HeaderChallenge)
	if c.challengeF, err = wire.ParseChallenge(c.challenge); err != nil {
		return nil, err
	}
	c.yb = c.challengeF.Share
	rest, _ = io.ReadAll(dbr)
	frames = splitFrames(rest, 0) // the WELCOME is the gateway's first tagged frame
	if len(frames) > 0 && frames[0].typ == byte(wire.FrameWelcome) {
		w, err := wire.DecodeFrame(wire.FrameWelcome, frames[0].body)
		if err != nil {
			return nil, err
		}
		c.tb, c.session = w.Confirmation, w.Session
		c.fromGateway = frames
	}
	return c, nil
}

// addBack adds a recorded back connection.
func (c *capture) addBack(up, down []byte) error {
	c.raw = append(c.raw, up, down)
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(up)))
	if err != nil {
		return err
	}
	b := backCapture{helloValue: req.Header.Get(wire.HeaderHello)}
	if b.hello, err = wire.ParseHello(b.helloValue); err != nil {
		return err
	}
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(down)), nil)
	if err != nil {
		return err
	}
	if b.accept, err = wire.DecodeValue(res.Header.Get(wire.HeaderProof), wire.ProofSize); err != nil {
		return fmt.Errorf("the back connection's 101 has no proof: %w", err)
	}
	c.backs = append(c.backs, b)
	return nil
}

// The CPace derivations of wire/cpace.go and wire/handshake.go, redone
// from the published description.

func lvCat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

var channelID = lvCat([]byte("tildegate/2 agent"), []byte("tildegate/2 gateway"))

// generator is CPace's calculate_generator for ristretto255 and SHA-512.
func generator(prs, ci, sid []byte) *ristretto255.Element {
	dsi := []byte("CPaceRistretto255")
	zpad := max(0, 128-len(lvCat(prs))-len(lvCat(dsi))-1)
	h := sha512.Sum512(lvCat(dsi, prs, make([]byte, zpad), ci, sid))
	return ristretto255.NewElement().FromUniformBytes(h[:])
}

// keysOf is the key schedule after CPace: the confirmations of both sides
// and the session key, from the shared point k.
func keysOf(sid, k, ya, hello, yb, challenge []byte) (ta, tb, session []byte) {
	agentMsg, gatewayMsg := lvCat(ya, hello), lvCat(yb, challenge)
	h := sha512.New()
	h.Write(lvCat([]byte("CPaceRistretto255_ISK"), sid, k))
	h.Write(agentMsg)
	h.Write(gatewayMsg)
	isk := h.Sum(nil)
	h = sha512.New()
	h.Write([]byte("CPaceMac"))
	h.Write(sid)
	h.Write(isk)
	macKey := h.Sum(nil)
	session, _ = hkdf.Key(sha256.New, isk, sid, "tildegate/2 session key", wire.SessionKeySize)
	return hmacOf(sha512.New, macKey, agentMsg), hmacOf(sha512.New, macKey, gatewayMsg), session
}

func hmacOf(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func sha256Of(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// macParts is wire's mac: HMAC-SHA-256 over a label and parts, each behind
// its 32-bit length.
func macParts(key []byte, label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range append([][]byte{[]byte(label)}, parts...) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

// frameTag is the tag of the counter-th frame one side sends.
func frameTag(frameKey []byte, counter uint64, typ byte, body []byte) []byte {
	var hdr [9]byte
	binary.BigEndian.PutUint64(hdr[:8], counter)
	hdr[8] = typ
	return hmacOf(sha256.New, frameKey, hdr[:], body)[:wire.TagSize]
}

func element(b []byte) *ristretto255.Element {
	e := ristretto255.NewElement()
	if e.Decode(b) != nil {
		return nil
	}
	return e
}

// guess tries, with password and what c recorded, every derivation below,
// and returns a line for each one whose result equals anything recorded
// that only the password or the session key could produce. scalars and
// keys are secrets the eavesdropper does not have; they are only given to
// check that the toolbox finds what it looks for when it has them.
//
// What it tries:
//   - the session identifier from the name and both public nonces, without
//     a channel binding (an eavesdropper behind TLS termination has none);
//   - CPace's generator for the password with that sid (and without sid,
//     and without the channel identifier): the generator itself and its
//     multiples by 1..256 against both shares;
//   - the shared point as a small multiple (1..64) of either share, or as
//     the generator, either share or a small multiple of the generator
//     (1..16), that is an agent or gateway with a weak scalar: the whole
//     key schedule from it, both confirmations and the session key;
//   - v1's proofs: PBKDF2-SHA-256 (20000 rounds, salted "tildegate/1 key "
//     or "tildegate/2 key " and the name), HMACs over v1's transcript with
//     the tildegate/1 or tildegate/2 token;
//   - HMAC-SHA-256 and HMAC-SHA-512 keyed with the password, and SHA-256
//     and SHA-512 of the password followed by each of: the hello, the
//     challenge, both, the nonces both ways, the sid, both shares, and
//     CPace's lv_cat(share, header) messages;
//   - every 32-byte value above, the password itself and its SHA-256, and
//     HKDF of the password with the sid, as a session key: the tags of
//     every frame after WELCOME both ways (and with the key itself as the
//     frame key), the back connections' proofs for either kind, the
//     gateway's accept proofs, and the resume proof;
//   - and every value above, whole and cut to 16, 32 and 64 bytes, against
//     every recorded confirmation, tag, proof and share.
func guess(c *capture, password string, scalars []*ristretto255.Scalar, keys []wire.SessionKey) []string {
	var found []string
	targets := map[string]string{}
	addTarget := func(what string, v []byte) {
		if len(v) > 0 {
			targets[string(v)] = what
		}
	}
	addTarget("the agent's confirmation", c.ta)
	addTarget("the gateway's confirmation", c.tb)
	addTarget("the agent's share", c.ya)
	addTarget("the gateway's share", c.yb)
	addTarget("the resume proof", c.resumeProof)
	for i, f := range c.fromAgent {
		addTarget(fmt.Sprintf("the tag of the agent's frame %d", i), f.tag)
	}
	for i, f := range c.fromGateway {
		addTarget(fmt.Sprintf("the tag of the gateway's frame %d", i), f.tag)
	}
	for i, b := range c.backs {
		addTarget(fmt.Sprintf("back connection %d's proof", i), b.hello.Proof)
		addTarget(fmt.Sprintf("back connection %d's accept proof", i), b.accept)
	}
	check := func(what string, v []byte) {
		for _, n := range []int{len(v), 16, 32, 64} {
			if n <= len(v) {
				if t, ok := targets[string(v[:n])]; ok {
					found = append(found, fmt.Sprintf("%s (first %d bytes) equals %s", what, n, t))
				}
			}
		}
	}
	pw := []byte(password)
	na, nb := c.helloF.Nonce, c.challengeF.Nonce
	sid := wire.SessionID(c.name, na, nb, nil)
	var sessionKeys [][]byte
	addKey := func(k []byte) { sessionKeys = append(sessionKeys, k) }

	// CPace's generator and its small multiples against the shares.
	for _, g := range []struct {
		what string
		e    *ristretto255.Element
	}{
		{"the generator", generator(pw, channelID, sid)},
		{"the generator without sid", generator(pw, channelID, nil)},
		{"the generator without CI", generator(pw, nil, sid)},
	} {
		acc := ristretto255.NewElement()
		for s := 1; s <= 256; s++ {
			acc.Add(acc, g.e)
			check(fmt.Sprintf("%s times %d", g.what, s), acc.Encode(nil))
		}
	}

	// The shared point from a weak scalar, and the key schedule from it.
	g := generator(pw, channelID, sid)
	var points [][]byte
	for _, share := range [][]byte{c.ya, c.yb} {
		e := element(share)
		if e == nil {
			continue
		}
		points = append(points, share)
		acc := ristretto255.NewElement()
		for s := 1; s <= 64; s++ {
			acc.Add(acc, e)
			points = append(points, acc.Encode(nil))
		}
	}
	acc := ristretto255.NewElement()
	for s := 1; s <= 16; s++ {
		acc.Add(acc, g)
		points = append(points, acc.Encode(nil))
	}
	// The secrets, given only to check the toolbox.
	if yb := element(c.yb); yb != nil {
		for _, s := range scalars {
			points = append(points, ristretto255.NewElement().ScalarMult(s, yb).Encode(nil))
		}
	}
	for i, k := range points {
		ta, tb, sk := keysOf(sid, k, c.ya, []byte(c.hello), c.yb, []byte(c.challenge))
		check(fmt.Sprintf("the agent's confirmation from candidate point %d", i), ta)
		check(fmt.Sprintf("the gateway's confirmation from candidate point %d", i), tb)
		addKey(sk)
	}

	// v1's proofs.
	for _, salt := range []string{"tildegate/1 key ", "tildegate/2 key "} {
		k, _ := pbkdf2.Key(sha256.New, password, []byte(salt+strings.ToLower(c.name)), 20000, 32)
		for _, token := range []string{"tildegate/1", "tildegate/2"} {
			h := sha256.New()
			for _, p := range [][]byte{[]byte(token), []byte(strings.ToLower(c.name)), na, nb, nil} {
				var n [4]byte
				binary.BigEndian.PutUint32(n[:], uint32(len(p)))
				h.Write(n[:])
				h.Write(p)
			}
			tr := h.Sum(nil)
			what := fmt.Sprintf("v1's %%s (salt %q, %s)", salt, token)
			check(fmt.Sprintf(what, "agent proof"), macParts(k, "agent proof", tr))
			check(fmt.Sprintf(what, "gateway proof"), macParts(k, "gateway proof", tr))
			sk := macParts(k, "session key", tr)
			check(fmt.Sprintf(what, "session key"), sk)
			addKey(sk)
		}
		addKey(k)
	}

	// Hashes and HMACs keyed with the password over the transcript.
	inputs := map[string][]byte{
		"the hello":             []byte(c.hello),
		"the challenge":         []byte(c.challenge),
		"hello and challenge":   []byte(c.hello + c.challenge),
		"the nonces":            append(bytes.Clone(na), nb...),
		"the nonces reversed":   append(bytes.Clone(nb), na...),
		"the sid":               sid,
		"both shares":           append(bytes.Clone(c.ya), c.yb...),
		"the agent's message":   lvCat(c.ya, []byte(c.hello)),
		"the gateway's message": lvCat(c.yb, []byte(c.challenge)),
	}
	for what, in := range inputs {
		for _, v := range []struct {
			how string
			sum []byte
		}{
			{"HMAC-SHA-256", hmacOf(sha256.New, pw, in)},
			{"HMAC-SHA-512", hmacOf(sha512.New, pw, in)},
			{"SHA-256", sha256Of(pw, in)},
		} {
			check(fmt.Sprintf("%s of the password and %s", v.how, what), v.sum)
			addKey(v.sum[:32])
		}
		s := sha512.Sum512(append(bytes.Clone(pw), in...))
		check("SHA-512 of the password and "+what, s[:])
	}
	pwHash := sha256.Sum256(pw)
	addKey(pw)
	addKey(pwHash[:])
	if k, err := hkdf.Key(sha256.New, pw, sid, "tildegate/2 session key", 32); err == nil {
		addKey(k)
	}
	for _, k := range keys {
		addKey(k)
	}

	// Every candidate as a session key.
	var resumeMsg = lvCat(c.ya, []byte(c.hello))
	for i, k := range sessionKeys {
		what := fmt.Sprintf("candidate session key %d", i)
		for _, dir := range []struct {
			frames []rawFrame
			keys   [][]byte
			who    string
		}{
			{c.fromAgent, [][]byte{macParts(k, "frames from the agent"), k}, "agent"},
			{c.fromGateway, [][]byte{macParts(k, "frames from the gateway"), k}, "gateway"},
		} {
			for _, fk := range dir.keys {
				for n, f := range dir.frames {
					if hmac.Equal(frameTag(fk, uint64(n), f.typ, f.body), f.tag) {
						found = append(found, fmt.Sprintf("%s gives the tag of the %s's frame %d", what, dir.who, n))
					}
				}
			}
		}
		for n, b := range c.backs {
			for _, kind := range []wire.Kind{wire.KindHTTP, wire.KindRDP} {
				if hmac.Equal(wire.SessionKey(k).BackProof(b.hello.Session, b.hello.Ticket, kind, b.hello.Nonce, nil), b.hello.Proof) {
					found = append(found, fmt.Sprintf("%s gives back connection %d's proof", what, n))
				}
			}
			if hmac.Equal(wire.SessionKey(k).BackAcceptProof(b.hello.Session, b.hello.Ticket, b.hello.Nonce, nil), b.accept) {
				found = append(found, fmt.Sprintf("%s gives back connection %d's accept proof", what, n))
			}
		}
		if c.resumeProof != nil && hmac.Equal(macParts(k, "resume", sid, resumeMsg), c.resumeProof) {
			found = append(found, what+" gives the resume proof")
		}
	}
	return found
}

// containsPassword reports whether any recorded byte sequence holds the
// password plainly, in base64 (either alphabet) or in hex.
func (c *capture) containsPassword(password string) bool {
	forms := []string{password, base64.StdEncoding.EncodeToString([]byte(password)),
		base64.RawURLEncoding.EncodeToString([]byte(password)), hex.EncodeToString([]byte(password))}
	for _, r := range c.raw {
		for _, f := range forms {
			if bytes.Contains(r, []byte(f)) {
				return true
			}
		}
	}
	return false
}

// cpaceHandshake registers name with password on conn with this file's
// own CPace, not wire's, and reads two tagged frames from the gateway. It
// returns the agent's secret scalar and the session key, which an
// eavesdropper never sees, and whether the gateway welcomed it and proved
// its confirmation: if it did, this file computes exactly what the
// protocol computes.
func cpaceHandshake(conn net.Conn, name, password string) (*ristretto255.Scalar, wire.SessionKey, error) {
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	hello := wire.Hello{Version: wire.Version, Role: wire.RoleControl, Nonce: e2e.Nonce()}
	helloValue := hello.String()
	a, br := upgrade(conn, request(conn.RemoteAddr().String(), "/~~"+name, wire.UpgradeToken, helloValue))
	if br == nil {
		return nil, nil, fmt.Errorf("upgrade: %s", a)
	}
	challengeValue := a.Header.Get(wire.HeaderChallenge)
	ch, err := wire.ParseChallenge(challengeValue)
	if err != nil {
		return nil, nil, err
	}
	sid := wire.SessionID(name, hello.Nonce, ch.Nonce, nil)
	var uniform [64]byte
	_, _ = rand.Read(uniform[:])
	y := ristretto255.NewScalar().FromUniformBytes(uniform[:])
	ya := ristretto255.NewElement().ScalarMult(y, generator([]byte(password), channelID, sid)).Encode(nil)
	yb := element(ch.Share)
	if yb == nil {
		return nil, nil, fmt.Errorf("the gateway's share is no group element")
	}
	k := ristretto255.NewElement().ScalarMult(y, yb).Encode(nil)
	ta, tb, session := keysOf(sid, k, ya, []byte(helloValue), ch.Share, []byte(challengeValue))
	if err := wire.WriteFrame(conn, wire.Frame{Type: wire.FrameAuth, Share: ya, Confirmation: ta}); err != nil {
		return nil, nil, err
	}
	opener := wire.NewOpener(wire.SessionKey(session), false)
	f, err := opener.ReadWelcome(br)
	if err != nil {
		return nil, nil, fmt.Errorf("a WELCOME tagged under this file's session key: %w", err)
	}
	if f.Type != wire.FrameWelcome {
		return nil, nil, fmt.Errorf("frame type %d (%s: %s) instead of WELCOME", f.Type, f.Code, f.Reason)
	}
	if !hmac.Equal(f.Confirmation, tb) {
		return nil, nil, fmt.Errorf("the gateway's confirmation differs from this file's")
	}
	for range 2 {
		if _, err := opener.ReadFrame(br); err != nil {
			return nil, nil, fmt.Errorf("a tagged frame under this file's session key: %w", err)
		}
	}
	return y, wire.SessionKey(session), nil
}
