package wire

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/gtank/ristretto255"
)

// unhex decodes the hex of the draft's test vectors, spaces and line
// breaks allowed.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scalarOf(t *testing.T, s string) *ristretto255.Scalar {
	t.Helper()
	y := ristretto255.NewScalar()
	if err := y.Decode(unhex(t, s)); err != nil {
		t.Fatal(err)
	}
	return y
}

// TestLvCat is appendix A.1.4 of draft-irtf-cfrg-cpace-21.
func TestLvCat(t *testing.T) {
	got := lvCat([]byte("1234"), []byte("5"), nil, []byte("678"))
	if want := unhex(t, "043132333401350003363738"); !bytes.Equal(got, want) {
		t.Errorf("lv_cat = %x, want %x", got, want)
	}
}

// TestCPaceVectors checks appendix B.3 of draft-irtf-cfrg-cpace-21
// (ristretto255, SHA-512): generator, shares, K and ISK.
func TestCPaceVectors(t *testing.T) {
	prs := []byte("Password")
	ci := unhex(t, "0b415f696e69746961746f720b425f726573706f6e646572")
	sid := unhex(t, "7e4b4791d6a8ef019b936c79fb7f2c57")

	genStr := generatorString([]byte(cpaceDSI), prs, ci, sid, sha512BlockSize)
	wantGenStr := unhex(t, `
		11435061636552697374726574746f3235350850617373776f726464
		00000000000000000000000000000000000000000000000000000000
		00000000000000000000000000000000000000000000000000000000
		00000000000000000000000000000000000000000000000000000000
		00000000000000000000000000000000180b415f696e69746961746f
		720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f
		2c57`)
	if !bytes.Equal(genStr, wantGenStr) {
		t.Fatalf("generator_string = %x\nwant %x", genStr, wantGenStr)
	}
	g := cpaceGenerator(prs, ci, sid)
	if got, want := g.Encode(nil), unhex(t, "222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56"); !bytes.Equal(got, want) {
		t.Fatalf("generator = %x, want %x", got, want)
	}

	a := cpaceSecretOf(scalarOf(t, "da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08"), g)
	b := cpaceSecretOf(scalarOf(t, "d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d"), g)
	if want := unhex(t, "d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157"); !bytes.Equal(a.share, want) {
		t.Errorf("Ya = %x, want %x", a.share, want)
	}
	if want := unhex(t, "3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258"); !bytes.Equal(b.share, want) {
		t.Errorf("Yb = %x, want %x", b.share, want)
	}
	ka, err := a.scalarMultVfy(b.share)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.scalarMultVfy(a.share)
	if err != nil {
		t.Fatal(err)
	}
	wantK := unhex(t, "80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f")
	if !bytes.Equal(ka, wantK) || !bytes.Equal(kb, wantK) {
		t.Errorf("K = %x and %x, want %x", ka, kb, wantK)
	}

	tr := transcriptIR(a.share, []byte("ADa"), b.share, []byte("ADb"))
	wantTr := unhex(t, `
		20d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0e
		ec482b915703414461203ea7e0b19560d7c0b0f5734f63b955286dfa
		8232b5ebe63324e2d9e7433f725803414462`)
	if !bytes.Equal(tr, wantTr) {
		t.Errorf("transcript_ir = %x, want %x", tr, wantTr)
	}
	isk := cpaceISK(sid, ka, tr)
	wantISK := unhex(t, `
		b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dc
		ae7b35cd2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c
		3fa2068af7900447`)
	if !bytes.Equal(isk, wantISK) {
		t.Errorf("ISK = %x, want %x", isk, wantISK)
	}
}

// TestCPaceScalarMultVfy is B.3.10 and B.3.11: a valid point multiplies,
// an invalid encoding and the identity abort.
func TestCPaceScalarMultVfy(t *testing.T) {
	s := &cpaceSecret{y: scalarOf(t, "7cd0e075fa7955ba52c02759a6c90dbbfc10e6d40aea8d283e407d88cf538a05")}
	got, err := s.scalarMultVfy(unhex(t, "2c3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c"))
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "7c13645fe790a468f62c39beb7388e541d8405d1ade69d1778c5fe3e7f6b600e"); !bytes.Equal(got, want) {
		t.Errorf("scalar_mult_vfy = %x, want %x", got, want)
	}
	for name, bad := range map[string][]byte{
		"invalid encoding": unhex(t, "2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c"),
		"identity":         make([]byte, 32),
		"short":            make([]byte, 31),
	} {
		if _, err := s.scalarMultVfy(bad); err != errInvalidShare {
			t.Errorf("%s: %v, want errInvalidShare", name, err)
		}
	}
}
