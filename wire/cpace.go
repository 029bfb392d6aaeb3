package wire

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"

	"github.com/gtank/ristretto255"
)

// CPace over ristretto255 with SHA-512 (CPACE-RISTR255-SHA512), as in
// draft-irtf-cfrg-cpace-21, initiator-responder setting. The agent is the
// initiator A, the gateway the responder B. Only what the handshake needs
// is here; the names follow the draft.

// Constants of the cipher suite.
const (
	cpaceDSI = "CPaceRistretto255"
	// sha512BlockSize is H.s_in_bytes of SHA-512.
	sha512BlockSize = 128
	// ShareSize is the size of an encoded group element: a CPace message.
	ShareSize = 32
)

// errInvalidShare is a peer's share that does not decode to a group element
// other than the identity: the draft's abort condition.
var errInvalidShare = errors.New("the peer's CPace share is not a valid group element")

// prependLen returns data behind its length in LEB128.
func prependLen(b, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(data))) // LEB128 for unsigned values
	return append(b, data...)
}

// lvCat is the draft's lv_cat: each part behind its length.
func lvCat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = prependLen(b, p)
	}
	return b
}

// generatorString is the draft's generator_string(DSI, PRS, CI, sid,
// s_in_bytes): the zero padding makes DSI and PRS fill the hash's first
// block, so that the time to hash does not depend on a short password.
func generatorString(dsi, prs, ci, sid []byte, blockSize int) []byte {
	zpad := max(0, blockSize-len(prependLen(nil, prs))-len(prependLen(nil, dsi))-1)
	return lvCat(dsi, prs, make([]byte, zpad), ci, sid)
}

// cpaceGenerator is G.calculate_generator for ristretto255 and SHA-512.
func cpaceGenerator(prs, ci, sid []byte) *ristretto255.Element {
	h := sha512.Sum512(generatorString([]byte(cpaceDSI), prs, ci, sid, sha512BlockSize))
	return ristretto255.NewElement().FromUniformBytes(h[:])
}

// cpaceSecret is one party's ephemeral scalar and the share it sends.
type cpaceSecret struct {
	y     *ristretto255.Scalar
	share []byte
}

// newCPaceSecret samples a scalar and computes the share y·g.
func newCPaceSecret(g *ristretto255.Element) *cpaceSecret {
	var uniform [64]byte
	y := ristretto255.NewScalar()
	for y.Equal(ristretto255.NewScalar()) == 1 {
		_, _ = rand.Read(uniform[:]) // never fails: crypto/rand panics instead
		y.FromUniformBytes(uniform[:])
	}
	return cpaceSecretOf(y, g)
}

// cpaceSecretOf returns the secret with scalar y, for the test vectors.
func cpaceSecretOf(y *ristretto255.Scalar, g *ristretto255.Element) *cpaceSecret {
	return &cpaceSecret{y: y, share: ristretto255.NewElement().ScalarMult(y, g).Encode(nil)}
}

// scalarMultVfy is G.scalar_mult_vfy: y times the peer's share, or an
// error where the draft returns G.I.
func (s *cpaceSecret) scalarMultVfy(peer []byte) ([]byte, error) {
	x := ristretto255.NewElement()
	if err := x.Decode(peer); err != nil {
		return nil, errInvalidShare
	}
	k := ristretto255.NewElement().ScalarMult(s.y, x)
	if k.Equal(ristretto255.NewElement()) == 1 {
		return nil, errInvalidShare
	}
	return k.Encode(nil), nil
}

// transcriptIR is the draft's transcript_ir(Ya, ADa, Yb, ADb).
func transcriptIR(ya, ada, yb, adb []byte) []byte {
	return append(lvCat(ya, ada), lvCat(yb, adb)...)
}

// cpaceISK is the intermediate session key of the draft's section 7.2.
func cpaceISK(sid, k, transcript []byte) []byte {
	h := sha512.New()
	h.Write(lvCat([]byte(cpaceDSI+"_ISK"), sid, k))
	h.Write(transcript)
	return h.Sum(nil)
}
