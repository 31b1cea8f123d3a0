package certs

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate and key from files and reads them again
// when they change (checked at most once a second), so a server's
// certificate can be rotated by replacing the files, without a restart.
type Reloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
}

// NewReloader loads the pair once (an error names the file).
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) load() error {
	st, err := os.Stat(r.certFile)
	if err != nil {
		return fmt.Errorf("tls.cert: %w", err)
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls.cert %s, tls.key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.modTime = &c, st.ModTime()
	return nil
}

// GetCertificate is tls.Config.GetCertificate. A pair that fails to load
// keeps the previous one in service.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		if st, err := os.Stat(r.certFile); err == nil && !st.ModTime().Equal(r.modTime) {
			old := r.cert
			if err := r.load(); err != nil {
				r.cert = old
			}
		}
	}
	return r.cert, nil
}

// ServerTLS is a TLS 1.2+ server config serving the reloaded pair.
func (r *Reloader) ServerTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate, NextProtos: []string{"h2", "http/1.1"}}
}
