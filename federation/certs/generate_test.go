package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// verifyNode checks a node certificate against the CA for both usages.
func verifyNode(t *testing.T, dir, node string) *x509.Certificate {
	t.Helper()
	f := NodeFiles(dir, node)
	ca, leaf := readCert(t, f.CA), readCert(t, f.Cert)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("%s: verify for usage %v: %v", node, u, err)
		}
	}
	if err := leaf.VerifyHostname(node); err != nil {
		t.Errorf("%s: %v", node, err)
	}
	return leaf
}

func TestGenerateDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var wrote []string
	err := GenerateDev(dir, []string{"city", "d-320505"}, DevOptions{
		Hosts: []string{"node1.example.org", "10.0.0.2", "localhost", "::1", "fd00::7"},
		Wrote: func(p string) { wrote = append(wrote, filepath.Base(p)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ca-key.pem", "ca.pem", "city-key.pem", "city.pem", "d-320505-key.pem", "d-320505.pem"}
	if !slices.Equal(wrote, want) {
		t.Errorf("wrote %v, want %v", wrote, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, want) { // no temporary files left behind
		t.Errorf("dir holds %v, want %v", names, want)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("dir mode %v", m)
	}
	for _, n := range want {
		wantMode := os.FileMode(0o644)
		if strings.HasSuffix(n, "-key.pem") {
			wantMode = 0o600
		}
		if m := mode(t, filepath.Join(dir, n)); m != wantMode {
			t.Errorf("%s: mode %v, want %v", n, m, wantMode)
		}
	}

	ca := readCert(t, filepath.Join(dir, CAFile))
	if !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA %v MaxPathLenZero %v KeyUsage %v", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage)
	}
	serials := map[string]bool{ca.SerialNumber.String(): true}
	for _, node := range []string{"city", "d-320505"} {
		leaf := verifyNode(t, dir, node)
		if leaf.Subject.CommonName != node || leaf.IsCA {
			t.Errorf("%s: CN %q IsCA %v", node, leaf.Subject.CommonName, leaf.IsCA)
		}
		if want := []string{node, "localhost", "node1.example.org"}; !slices.Equal(leaf.DNSNames, want) {
			t.Errorf("%s: DNS SANs %v, want %v", node, leaf.DNSNames, want)
		}
		var ips []string
		for _, ip := range leaf.IPAddresses {
			ips = append(ips, ip.String())
		}
		if want := []string{"127.0.0.1", "::1", "10.0.0.2", "fd00::7"}; !slices.Equal(ips, want) {
			t.Errorf("%s: IP SANs %v, want %v", node, ips, want)
		}
		if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
			t.Errorf("%s: ext key usage %v", node, leaf.ExtKeyUsage)
		}
		pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: public key %T, want ECDSA P-256", node, leaf.PublicKey)
		}
		if d := time.Until(leaf.NotAfter) - DefaultValidity; d > time.Second || d < -time.Minute {
			t.Errorf("%s: expires %v, want in %v", node, leaf.NotAfter, DefaultValidity)
		}
		if leaf.SerialNumber.Sign() <= 0 || serials[leaf.SerialNumber.String()] {
			t.Errorf("%s: serial %v not positive or repeated", node, leaf.SerialNumber)
		}
		serials[leaf.SerialNumber.String()] = true
		for _, host := range []string{"localhost", "node1.example.org", "127.0.0.1", "10.0.0.2", "::1"} {
			if err := leaf.VerifyHostname(host); err != nil {
				t.Errorf("%s: %v", node, err)
			}
		}
		if err := leaf.VerifyHostname("10.0.0.3"); err == nil {
			t.Errorf("%s: valid for 10.0.0.3", node)
		}
		// The key file holds the certificate's key.
		if _, err := NodeFiles(dir, node).ClientConfig(); err != nil {
			t.Error(err)
		}
	}
}

func TestGenerateDevReusesCA(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateDev(dir, []string{"city"}, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(filepath.Join(dir, CAFile))
	keyBefore, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	cityBefore, _ := os.ReadFile(filepath.Join(dir, "city.pem"))

	var wrote []string
	err := GenerateDev(dir, []string{"s-320505001", "s-320505002"}, DevOptions{
		Validity: 48 * time.Hour,
		Wrote:    func(p string) { wrote = append(wrote, filepath.Base(p)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"s-320505001-key.pem", "s-320505001.pem", "s-320505002-key.pem", "s-320505002.pem"}; !slices.Equal(wrote, want) {
		t.Errorf("wrote %v, want %v", wrote, want)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, CAFile))
	keyAfter, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	cityAfter, _ := os.ReadFile(filepath.Join(dir, "city.pem"))
	if len(caBefore) == 0 || !bytes.Equal(caBefore, caAfter) || !bytes.Equal(keyBefore, keyAfter) {
		t.Error("the CA files changed")
	}
	if !bytes.Equal(cityBefore, cityAfter) {
		t.Error("city.pem changed")
	}
	for _, n := range []string{"city", "s-320505001", "s-320505002"} {
		verifyNode(t, dir, n)
	}
	leaf := readCert(t, filepath.Join(dir, "s-320505001.pem"))
	if d := time.Until(leaf.NotAfter) - 48*time.Hour; d > time.Second || d < -time.Minute {
		t.Errorf("expires %v, want in 48h", leaf.NotAfter)
	}
}

func TestGenerateDevCutsValidityToCA(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateDev(dir, []string{"city"}, DevOptions{CAValidity: 24 * time.Hour, Validity: 1000 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	ca, leaf := readCert(t, filepath.Join(dir, CAFile)), readCert(t, filepath.Join(dir, "city.pem"))
	if !leaf.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("node expires %v, CA %v", leaf.NotAfter, ca.NotAfter)
	}
}

func TestGenerateDevRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateDev(dir, []string{"city", "d-320505"}, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	city := NodeFiles(dir, "city")
	certBefore, _ := os.ReadFile(city.Cert)
	keyBefore, _ := os.ReadFile(city.Key)

	// d-320506 is new, but nothing is written while city exists.
	err := GenerateDev(dir, []string{"d-320506", "city"}, DevOptions{})
	if want := `node "city": ` + city.Cert + ", " + city.Key; err == nil || !strings.Contains(err.Error(), want) ||
		strings.Contains(err.Error(), "d-320506") || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want fs.ErrExist naming only %s", err, want)
	}
	if _, err := os.Stat(NodeFiles(dir, "d-320506").Cert); !os.IsNotExist(err) {
		t.Errorf("d-320506.pem written despite the refusal: %v", err)
	}
	certAfter, _ := os.ReadFile(city.Cert)
	if !bytes.Equal(certBefore, certAfter) {
		t.Error("city.pem changed")
	}

	// A key alone also blocks.
	if err := os.Remove(city.Cert); err != nil {
		t.Fatal(err)
	}
	if err := GenerateDev(dir, []string{"city"}, DevOptions{}); err == nil || !strings.Contains(err.Error(), `node "city": `+city.Key) {
		t.Fatalf("err = %v, want one naming %s", err, city.Key)
	}

	// Force replaces, under the same CA.
	if err := GenerateDev(dir, []string{"city", "d-320505"}, DevOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	keyAfter, _ := os.ReadFile(city.Key)
	if bytes.Equal(keyBefore, keyAfter) {
		t.Error("city-key.pem not replaced")
	}
	verifyNode(t, dir, "city")
	verifyNode(t, dir, "d-320505")
}

func TestGenerateDevBadInput(t *testing.T) {
	for _, tc := range []struct {
		nodes []string
		hosts []string
		want  string
	}{
		{nodes: []string{"city", "City"}, want: `"City"`},
		{nodes: []string{"d_320505"}, want: `"d_320505"`},
		{nodes: []string{""}, want: "empty"},
		{nodes: []string{strings.Repeat("a", 65)}, want: "65 characters"},
		{nodes: []string{"../etc"}, want: `"../etc"`},
		{nodes: []string{"ca"}, want: `"ca" is reserved`},
		{nodes: []string{"city-key"}, want: `"city-key"`},
		{nodes: []string{"city", "d-320505", "city"}, want: `"city" given twice`},
		{nodes: []string{"city"}, hosts: []string{"bad host"}, want: `host "bad host"`},
		{nodes: []string{"city"}, hosts: []string{""}, want: `host ""`},
	} {
		dir := filepath.Join(t.TempDir(), "certs")
		err := GenerateDev(dir, tc.nodes, DevOptions{Hosts: tc.hosts})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q hosts %q: err = %v, want one containing %s", tc.nodes, tc.hosts, err, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%q: directory made despite the error", tc.nodes)
		}
	}
	if err := ValidateNodeName(strings.Repeat("a", 64)); err != nil {
		t.Errorf("64 characters: %v", err)
	}
	for _, ok := range []string{"city", "d-320505", "s-320505001", "c-320505001001", "keys", "ca1"} {
		if err := ValidateNodeName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestGenerateDevHalfCA(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateDev(dir, nil, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	err := GenerateDev(dir, []string{"city"}, DevOptions{})
	if err == nil || !strings.Contains(err.Error(), CAKeyFile) {
		t.Fatalf("err = %v, want one naming %s", err, CAKeyFile)
	}
	if _, err := os.Stat(filepath.Join(dir, "city.pem")); !os.IsNotExist(err) {
		t.Errorf("city.pem written: %v", err)
	}

	// A CA key that does not match the certificate is refused too.
	other := t.TempDir()
	if err := GenerateDev(other, nil, DevOptions{}); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(other, CAKeyFile))
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := GenerateDev(dir, []string{"city"}, DevOptions{}); err == nil || !strings.Contains(err.Error(), "is not the key of") {
		t.Fatalf("err = %v, want a key mismatch", err)
	}
}
