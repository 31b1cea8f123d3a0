package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
)

// InternalConfig is the replicas' own plane: the internal gRPC listener
// (write forwarding between replicas) and the raft transport. Both run
// over mutual TLS with the group's identity: a certificate whose
// CommonName is the group's name (Config.Group), verified against
// internal.tls.ca. Replicas of one group share that name; a client, a
// neighbouring node or another group is refused.
type InternalConfig struct {
	// Addr is the internal gRPC listener. Only the group's replicas call it.
	Addr string `mapstructure:"addr"`
	// Insecure runs the internal listener and raft in plain TCP without
	// identity checks. Validate allows it only while internal.addr,
	// raft.addr, raft.advertise and every raft.peers raft_addr and
	// internal_addr are loopback addresses (development, tests).
	Insecure bool `mapstructure:"insecure"`
	// TLS is the replica's identity on the internal plane. Empty in a
	// federation with federation.tls set means the federation's files
	// (their CommonName is the node name, which is the group's name).
	TLS TLSConfig `mapstructure:"tls"`
}

// groupPattern is a certificate node name (federation/certs.ValidateNodeName).
var groupPattern = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// Group is the name every replica of this group proves on the internal
// plane (its certificate's CommonName): node.group, else federation.node in
// a federation, else node.jurisdiction.
func (c *Config) Group() string {
	switch {
	case c.Node.Group != "":
		return c.Node.Group
	case c.Federation.Enabled() && c.Federation.Node != "":
		return c.Federation.Node
	}
	return c.Node.Jurisdiction
}

// InternalTLS names the PEM files of the replica's internal identity:
// internal.tls, or federation.tls when internal.tls is empty and the node
// is federated over mTLS.
func (c *Config) InternalTLS() TLSConfig {
	t := c.Internal.TLS
	if t == (TLSConfig{}) && c.Federation.Enabled() && !c.Federation.Insecure {
		return c.Federation.TLS
	}
	return t
}

func (c *Config) validateInternal(v *validator) {
	in := c.Internal
	// validateAddrs checks internal.addr's form and its port against the
	// other listeners; the federation listener is checked here.
	if port, ok := portOf(in.Addr); ok && c.Federation.Enabled() {
		if p, ok := portOf(c.Federation.Addr); ok && p == port {
			v.add("internal.addr", "port %d is already used by federation.addr", port)
		}
	}
	group := c.Group()
	switch {
	case c.Node.Group != "" && !groupPattern.MatchString(c.Node.Group):
		v.add("node.group", "%q must be 1-64 characters of [a-z0-9-] (a certificate node name)", c.Node.Group)
	case c.Node.Group != "" && c.Federation.Enabled() && c.Federation.Node != "" && c.Node.Group != c.Federation.Node:
		v.add("node.group", "%q, but in a federation the group is the node's name %q (federation.node): leave node.group empty", c.Node.Group, c.Federation.Node)
	}
	for i, p := range c.Raft.Peers {
		v.hostPort(fmt.Sprintf("raft.peers[%d].internal_addr", i), p.InternalAddr, false)
	}

	if in.Insecure {
		if bad := c.nonLoopbackInternal(); len(bad) > 0 {
			v.add("internal.insecure", "plain text between replicas is allowed only on loopback, but %s; set internal.tls.{ca,cert,key} (a certificate with CommonName %q) and internal.insecure: false", strings.Join(bad, ", "), group)
		}
		return
	}
	files := c.InternalTLS()
	ok := true
	for _, f := range []struct{ key, path string }{{"internal.tls.ca", files.CA}, {"internal.tls.cert", files.Cert}, {"internal.tls.key", files.Key}} {
		switch {
		case f.path == "":
			v.add(f.key, "required unless internal.insecure is true (make certs writes development certificates; the CommonName must be %q)", group)
			ok = false
		default:
			if _, err := os.Stat(f.path); err != nil {
				v.add(f.key, "%v", err)
				ok = false
			}
		}
	}
	if !ok {
		return
	}
	cn, err := certCommonName(files.Cert)
	switch {
	case err != nil:
		v.add("internal.tls.cert", "%v", err)
	case cn != group:
		v.add("internal.tls.cert", "%s has CommonName %q, but replicas of this group prove the name %q (node.group, federation.node or node.jurisdiction)", files.Cert, cn, group)
	}
}

// nonLoopbackInternal lists the internal and raft addresses that are not
// loopback, as "key=address".
func (c *Config) nonLoopbackInternal() []string {
	addrs := []struct{ key, addr string }{
		{"internal.addr", c.Internal.Addr},
		{"raft.addr", c.Raft.Addr},
		{"raft.advertise", c.Raft.Advertise},
	}
	for i, p := range c.Raft.Peers {
		addrs = append(addrs,
			struct{ key, addr string }{fmt.Sprintf("raft.peers[%d].raft_addr", i), p.RaftAddr},
			struct{ key, addr string }{fmt.Sprintf("raft.peers[%d].internal_addr", i), p.InternalAddr})
	}
	var bad []string
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			continue // empty or malformed: reported under its own key
		}
		if !loopback(a.addr) {
			bad = append(bad, fmt.Sprintf("%s is %q", a.key, a.addr))
		}
	}
	return bad
}

// loopback reports whether host:port names a loopback address (an IP in
// 127.0.0.0/8 or ::1, or "localhost"); an empty host binds every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// certCommonName reads the subject CommonName of the first certificate in
// a PEM file.
func certCommonName(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return "", fmt.Errorf("%s: no PEM certificate", path)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return cert.Subject.CommonName, nil
	}
}
