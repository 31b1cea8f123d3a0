package config

import (
	"net"
	"os"
	"time"

	"github.com/cityhub/cityhub/tiers/auth"
)

// AuthConfig sets who may call the node's API (see tiers/auth).
type AuthConfig struct {
	// Disabled turns authentication off: callers are who their requests
	// say (actor, role). For tests and development on loopback only:
	// Validate refuses it when an API address is not a loopback address.
	Disabled bool `mapstructure:"disabled"`
	// TokenTTL is the life of an access token issued at login.
	TokenTTL time.Duration `mapstructure:"token_ttl"`
	// SessionTTL is how long a login can be refreshed.
	SessionTTL time.Duration `mapstructure:"session_ttl"`
	// KeyRotation: the leader makes a new token signing key when the
	// newest is older than this.
	KeyRotation time.Duration `mapstructure:"key_rotation"`
	// AdminPasswordFile makes the first administrator: while the node has
	// no account named admin_user, its leader creates it (role ADMIN) with
	// the password this file holds. Empty: create administrators with
	// `cityhubctl accounts create` from an existing one.
	AdminPasswordFile string `mapstructure:"admin_password_file"`
	AdminUser         string `mapstructure:"admin_user"`
	// OIDC accepts tokens of the city's identity provider (统一身份认证);
	// empty issuer: off. See tiers/auth/oidc.go for the claims.
	OIDC auth.OIDCConfig `mapstructure:"oidc"`
}

// APITLSConfig is the TLS of the client API (gRPC and REST). The files are
// read again when they change, so certificates rotate without a restart.
type APITLSConfig struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	// CA verifies the other replicas' API certificates when a follower
	// passes a read to the leader (empty: the system's roots).
	CA string `mapstructure:"ca"`
	// Disabled serves the API in plain text: allowed only when both API
	// addresses are loopback addresses (the demo, tests).
	Disabled bool `mapstructure:"disabled"`
}

// Enabled reports whether the client API uses TLS.
func (t APITLSConfig) Enabled() bool { return !t.Disabled && t.Cert != "" }

func (c *Config) validateAuth(v *validator) {
	a := c.Auth
	if a.TokenTTL < time.Minute || a.TokenTTL > 24*time.Hour {
		v.add("auth.token_ttl", "%v must be between 1m and 24h", a.TokenTTL)
	}
	if a.SessionTTL < a.TokenTTL || a.SessionTTL > 90*24*time.Hour {
		v.add("auth.session_ttl", "%v must be at least auth.token_ttl and at most 90 days", a.SessionTTL)
	}
	if a.KeyRotation < a.TokenTTL {
		v.add("auth.key_rotation", "%v must be at least auth.token_ttl", a.KeyRotation)
	}
	if a.AdminPasswordFile != "" {
		if _, err := os.Stat(a.AdminPasswordFile); err != nil {
			v.add("auth.admin_password_file", "%v", err)
		}
		if !idPattern.MatchString(a.AdminUser) {
			v.add("auth.admin_user", "%q must be 1-32 characters of [a-z0-9-]", a.AdminUser)
		}
	}
	if a.OIDC.Enabled() {
		if err := a.OIDC.WithDefaults().Validate(); err != nil {
			v.errs = append(v.errs, err)
		}
	}
	loopback := isLoopback(c.GRPC.Addr) && isLoopback(c.HTTP.Addr)
	if a.Disabled && !loopback {
		v.add("auth.disabled", "authentication may be off only when grpc.addr and http.addr are loopback addresses")
	}
	t := c.TLS
	switch {
	case t.Disabled && !loopback:
		v.add("tls.disabled", "the client API may be plain text only on loopback addresses: set tls.cert and tls.key")
	case !t.Disabled && (t.Cert == "") != (t.Key == ""):
		v.add("tls.key", "tls.cert and tls.key go together")
	case !t.Disabled && t.Cert == "" && !loopback:
		v.add("tls.cert", "required when the API listens beyond loopback (or tls.disabled on loopback)")
	case !t.Disabled && t.Cert != "":
		for _, f := range []struct{ key, path string }{{"tls.cert", t.Cert}, {"tls.key", t.Key}, {"tls.ca", t.CA}} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				v.add(f.key, "%v", err)
			}
		}
	}
}

// isLoopback reports whether a host:port listens on a loopback address only.
// An address that does not parse counts as loopback here: its own key
// reports it.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
