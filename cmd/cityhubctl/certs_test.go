package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/federation/certs"
)

func TestCertsCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out, errOut := runCLI(t, "certs", "create", "--dir", dir, "--host", "10.0.0.2", "--host", "node2.example.org",
		"--validity", "30d", "city", "d-320505")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var want strings.Builder
	for _, f := range []string{"ca-key.pem", "ca.pem", "city-key.pem", "city.pem", "d-320505-key.pem", "d-320505.pem"} {
		want.WriteString("wrote " + filepath.Join(dir, f) + "\n")
	}
	if out != want.String() {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want.String())
	}

	data, err := os.ReadFile(filepath.Join(dir, "d-320505.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "d-320505" || !slices.Contains(leaf.DNSNames, "node2.example.org") || leaf.VerifyHostname("10.0.0.2") != nil {
		t.Errorf("CN %q, DNS %v, IPs %v", leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	if d := time.Until(leaf.NotAfter) - 30*24*time.Hour; d > time.Second || d < -time.Minute {
		t.Errorf("expires %v, want in 30 days", leaf.NotAfter)
	}
	if _, err := certs.NodeFiles(dir, "city").ServerConfig(); err != nil {
		t.Error(err)
	}

	// A later node joins the same CA.
	caBefore, _ := os.ReadFile(filepath.Join(dir, certs.CAFile))
	code, out, errOut = runCLI(t, "certs", "create", "--dir", dir, "s-320505001")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if want := "using CA " + filepath.Join(dir, "ca.pem") + "\nwrote " + filepath.Join(dir, "s-320505001-key.pem") +
		"\nwrote " + filepath.Join(dir, "s-320505001.pem") + "\n"; out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(dir, certs.CAFile)); string(caAfter) != string(caBefore) {
		t.Error("ca.pem changed")
	}

	// An existing node is refused (exit 1) unless --force.
	code, out, errOut = runCLI(t, "certs", "create", "--dir", dir, "city")
	if code != 1 || out != "" || !strings.Contains(errOut, `node "city": `+filepath.Join(dir, "city.pem")) ||
		!strings.Contains(errOut, "--force replaces them") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "certs", "create", "--dir", dir, "--force", "city")
	if code != 0 || !strings.Contains(out, "wrote "+filepath.Join(dir, "city.pem")) {
		t.Errorf("--force: exit %d\n%s%s", code, out, errOut)
	}
}

func TestCertsCreateUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	for _, args := range [][]string{
		{"certs", "create", "--dir", dir},                       // no node
		{"certs", "create", "city"},                             // no --dir
		{"certs", "create", "--dir", dir, "city", "District_1"}, // bad name
		{"certs", "create", "--dir", dir, "ca"},                 // reserved
		{"certs", "create", "--dir", dir, "--validity", "0", "city"},
		{"certs", "create", "--dir", dir, "--validity", "soon", "city"},
		{"certs", "create", "--dir", dir, "--bogus", "city"},
	} {
		code, out, errOut := runCLI(t, args...)
		if code != 2 || !strings.HasPrefix(errOut, "error: ") || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2", args, code, out, errOut)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s made by a refused command", dir)
	}
	code, _, errOut := runCLI(t, "certs", "create", "--dir", dir, "city", "District_1")
	if code != 2 || !strings.Contains(errOut, `"District_1"`) {
		t.Errorf("exit %d, stderr %q; want the bad name", code, errOut)
	}
}
