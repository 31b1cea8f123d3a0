package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults of DevOptions.
const (
	DefaultValidity   = 365 * 24 * time.Hour
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
)

// Organization is the subject organization of every certificate GenerateDev
// makes; caCommonName is the new CA's subject name.
const (
	Organization = "cityhub"
	caCommonName = "cityhub development CA"
)

// clockSkew backdates NotBefore so that a certificate made now is valid on a
// peer whose clock is a little behind.
const clockSkew = time.Minute

// DevOptions tunes GenerateDev. The zero value is usable.
type DevOptions struct {
	// Hosts are extra names the node certificates are valid for: each one
	// that parses as an IP address becomes an IP SAN, any other a DNS SAN
	// (e.g. "node1.example.org", "10.0.0.2"). Every node certificate
	// already holds the node name, "localhost", 127.0.0.1 and ::1.
	Hosts []string
	// Validity of each node certificate from now; 0 means DefaultValidity.
	// It is cut short to the CA's own expiry.
	Validity time.Duration
	// CAValidity of a CA made now; 0 means DefaultCAValidity. An existing
	// CA is kept as it is.
	CAValidity time.Duration
	// Force replaces existing node certificates and keys; without it
	// GenerateDev refuses to touch them.
	Force bool
	// Wrote, if set, is called with the path of each file once written.
	Wrote func(path string)
}

// GenerateDev writes a development CA and, signed by it, a certificate and
// key for each node into dir (created 0700 when missing; an existing
// directory keeps its mode):
//
//	ca.pem, ca-key.pem           the CA, made unless both already exist
//	<node>.pem, <node>-key.pem   ECDSA P-256; CommonName = node name;
//	                             server and client authentication
//
// An existing CA is reused, so later calls add nodes under the same CA and
// leave ca.pem byte-identical; a directory with only one of the two CA files
// is an error. Keys are written 0600, certificates 0644, each file through a
// temporary file renamed into place.
//
// Everything is checked before anything is written: every node name (see
// ValidateNodeName; duplicates too), opts.Hosts and, unless opts.Force, that
// no node's certificate or key exists yet (that error matches fs.ErrExist).
// Each error names the node, host or file at fault.
func GenerateDev(dir string, nodes []string, opts DevOptions) error {
	if opts.Validity < 0 || opts.CAValidity < 0 {
		return fmt.Errorf("certs: negative validity")
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.CAValidity == 0 {
		opts.CAValidity = DefaultCAValidity
	}
	var errs []error
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if err := ValidateNodeName(n); err != nil {
			errs = append(errs, err)
		} else if seen[n] {
			errs = append(errs, fmt.Errorf("node name %q given twice", n))
		}
		seen[n] = true
	}
	dns, ips, err := parseHosts(opts.Hosts)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("certs: %w", errors.Join(errs...))
	}

	if !opts.Force {
		var existing existsError
		for _, n := range nodes {
			f := NodeFiles(dir, n)
			var found []string
			for _, p := range []string{f.Cert, f.Key} {
				if exists, err := fileExists(p); err != nil {
					errs = append(errs, err)
				} else if exists {
					found = append(found, p)
				}
			}
			if len(found) > 0 {
				existing = append(existing, fmt.Sprintf("node %q: %s", n, strings.Join(found, ", ")))
			}
		}
		if len(existing) > 0 {
			errs = append(errs, existing)
		}
		if len(errs) > 0 {
			return fmt.Errorf("certs: %w", errors.Join(errs...))
		}
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	now := time.Now()
	ca, caKey, err := loadOrCreateCA(dir, now, opts)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if !now.Before(ca.NotAfter) {
		return fmt.Errorf("certs: the CA in %s expired at %s", filepath.Join(dir, CAFile), ca.NotAfter.Format(time.RFC3339))
	}
	notAfter := now.Add(opts.Validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	for _, n := range nodes {
		if err := writeNode(dir, n, ca, caKey, now, notAfter, dns, ips, opts.Wrote); err != nil {
			return fmt.Errorf("certs: node %q: %w", n, err)
		}
	}
	return nil
}

// existsError lists the nodes whose files GenerateDev found without Force,
// one line each; it matches fs.ErrExist.
type existsError []string

func (e existsError) Error() string {
	return "node files already exist (force to replace them):\n  " + strings.Join(e, "\n  ")
}

func (e existsError) Is(target error) bool { return target == fs.ErrExist }

// parseHosts splits hosts into DNS names and IP addresses.
func parseHosts(hosts []string) (dns []string, ips []net.IP, err error) {
	var errs []error
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if err := validateDNSName(h); err != nil {
			errs = append(errs, err)
			continue
		}
		dns = append(dns, strings.ToLower(h))
	}
	return dns, ips, errors.Join(errs...)
}

// validateDNSName accepts a host name of letter, digit and hyphen labels,
// the first of which may be a wildcard "*".
func validateDNSName(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host %q: neither an IP address nor a DNS name of 1 to 253 characters", h)
	}
	for i, label := range strings.Split(h, ".") {
		if i == 0 && label == "*" && strings.Contains(h, ".") {
			continue
		}
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q: neither an IP address nor a DNS name (empty or over-long label)", h)
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("host %q: neither an IP address nor a DNS name (character %q)", h, rune(c))
			}
		}
	}
	return nil
}

func fileExists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// loadOrCreateCA reads the CA in dir, or makes one when neither of its files
// exists.
func loadOrCreateCA(dir string, now time.Time, opts DevOptions) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	certExists, err := fileExists(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyExists, err := fileExists(keyPath)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case certExists && keyExists:
		return loadCA(certPath, keyPath)
	case certExists:
		return nil, nil, fmt.Errorf("%s exists without %s: restore the key or remove both to make a new CA", certPath, keyPath)
	case keyExists:
		return nil, nil, fmt.Errorf("%s exists without %s: restore the certificate or remove both to make a new CA", keyPath, certPath)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName, Organization: []string{Organization}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(opts.CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // node certificates only, no intermediates
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the new CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	// The key first: a crash in between leaves a key without a certificate,
	// which the next run refuses instead of silently making a new CA.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600, opts.Wrote); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(certPath, encodeCert(der), 0o644, opts.Wrote); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// loadCA reads a CA certificate and its private key and checks that they
// belong together and that the certificate may sign others.
func loadCA(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no PEM CERTIFICATE block", certPath)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if !ca.BasicConstraintsValid || !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("%s: not a CA certificate (basic constraints CA and key usage cert sign)", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	key, err := decodeKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("%s is not the key of %s", keyPath, certPath)
	}
	return ca, key, nil
}

// writeNode makes, signs and writes one node's key and certificate.
func writeNode(dir, node string, ca *x509.Certificate, caKey crypto.Signer, now, notAfter time.Time, hosts []string, hostIPs []net.IP, wrote func(string)) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: node, Organization: []string{Organization}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              dedupe(append([]string{node, "localhost"}, hosts...)),
		IPAddresses:           dedupeIPs(append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, hostIPs...)),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("signing the certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	f := NodeFiles(dir, node)
	if err := writeFileAtomic(f.Key, keyPEM, 0o600, wrote); err != nil {
		return err
	}
	return writeFileAtomic(f.Cert, encodeCert(der), 0o644, wrote)
}

// randomSerial returns a positive random serial number of up to 128 bits.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("making a serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// encodeKey writes a private key as PKCS #8 PEM ("PRIVATE KEY").
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// decodeKey reads the first private key of a PEM file: PKCS #8, SEC 1 (EC)
// or PKCS #1 (RSA).
func decodeKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key block")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T cannot sign", key)
		}
		return s, nil
	}
}

// writeFileAtomic writes data to a temporary file in path's directory with
// mode perm and renames it to path.
func writeFileAtomic(path string, data []byte, perm os.FileMode, wrote func(string)) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if wrote != nil {
		wrote(path)
	}
	return nil
}

func dedupe(names []string) []string {
	var out []string
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func dedupeIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		dup := false
		for _, o := range out {
			if o.Equal(ip) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, ip)
		}
	}
	return out
}
