package agent

import "crypto/rand"

// fresh returns n random bytes, for nonces.
func fresh(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails; see crypto/rand.Read
	return b
}
