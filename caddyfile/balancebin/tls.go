package balancebin

// TLSKeyword is the keyword that may precede a balance.bin entry, kept as
// written so that Format gives it back.
type TLSKeyword string

// The TLS keywords of balance.bin. They are case-sensitive.
const (
	// KeywordNone: plain HTTP to the server.
	KeywordNone TLSKeyword = ""
	// KeywordSSL: HTTPS, any certificate accepted.
	KeywordSSL TLSKeyword = "SSL"
	// KeywordSSLStrict: HTTPS with a verified certificate.
	KeywordSSLStrict TLSKeyword = "SSL_STRICT"
	// KeywordSSLJVMTM reads as KeywordSSL.
	KeywordSSLJVMTM TLSKeyword = "SSL_JVM_TM"
	// KeywordSSLJVMTMStrict reads as KeywordSSLStrict.
	KeywordSSLJVMTMStrict TLSKeyword = "SSL_JVM_TM_STRICT"
)

// tlsKeywords lists the keywords Parse accepts before "/~~".
var tlsKeywords = []string{
	string(KeywordSSL), string(KeywordSSLStrict), string(KeywordSSLJVMTM), string(KeywordSSLJVMTMStrict),
}

// Encrypted reports whether the keyword asks for TLS.
func (k TLSKeyword) Encrypted() bool { return k != KeywordNone }

// Verified reports whether the keyword asks for TLS with a verified
// certificate.
func (k TLSKeyword) Verified() bool {
	return k == KeywordSSLStrict || k == KeywordSSLJVMTMStrict
}
