package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Env holds what a test binary builds once: the binaries under test, in a
// folder every user may read (squid's helpers run from it), and a CA with a
// certificate for 127.0.0.1 signed by it.
type Env struct {
	Dir      string
	Caddy    string
	Agent    string
	CAFile   string
	CertFile string
	KeyFile  string
}

// NewEnv builds cmd/caddy and cmd/tildegate-agent of the module at root
// into a new folder and writes the certificates. Remove Dir when done.
func NewEnv(root string) (*Env, error) {
	dir, err := os.MkdirTemp("", "tildegate-e2e-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	e := &Env{Dir: dir}
	if e.Caddy, err = e.Build("caddy", filepath.Join(root, "cmd/caddy")); err != nil {
		return nil, err
	}
	if e.Agent, err = e.Build("tildegate-agent", filepath.Join(root, "cmd/tildegate-agent")); err != nil {
		return nil, err
	}
	return e, e.writeCertificates()
}

// Main is a test package's TestMain body: it builds the binaries of the
// module at root into *env, runs setup (when not nil: it may build more),
// runs the tests and removes the binaries. It returns the exit code for
// os.Exit.
func Main(m *testing.M, root string, env **Env, setup func(*Env) error) int {
	e, err := NewEnv(root)
	if e != nil {
		defer os.RemoveAll(e.Dir)
	}
	if err == nil && setup != nil {
		err = setup(e)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*env = e
	return m.Run()
}

// Build builds the package at pkg into the folder as name.
func (e *Env) Build(name, pkg string) (string, error) {
	out := filepath.Join(e.Dir, name)
	if b, err := exec.Command("go", "build", "-o", out, "./"+filepath.Clean(pkg)).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

func (e *Env) writeCertificates() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tildegate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	e.CAFile = filepath.Join(e.Dir, "ca.pem")
	e.CertFile = filepath.Join(e.Dir, "cert.pem")
	e.KeyFile = filepath.Join(e.Dir, "key.pem")
	for path, block := range map[string]*pem.Block{
		e.CAFile:   {Type: "CERTIFICATE", Bytes: caDER},
		e.CertFile: {Type: "CERTIFICATE", Bytes: leafDER},
		e.KeyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o644); err != nil {
			return err
		}
	}
	return nil
}
