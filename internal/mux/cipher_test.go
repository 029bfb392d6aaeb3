package mux

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"
)

// BenchmarkCipherPass is one pass of the cipher that the tunnel's TLS 1.3
// connections use on processors with AES instructions (AES-128-GCM) over
// full 16 KiB records: the least that a byte through the tunnel costs a
// side beyond a plain proxy's copy. scripts/bench.sh runs it in every
// round and takes it into the target of the gateway's CPU per MB in bulk.
func BenchmarkCipherPass(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	record := aead.Seal(nil, nonce, make([]byte, 16384), nil)
	plain := make([]byte, 0, 16384)
	b.SetBytes(16384)
	for b.Loop() {
		if _, err := aead.Open(plain[:0], nonce, record, nil); err != nil {
			b.Fatal(err)
		}
	}
}
