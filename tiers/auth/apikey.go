package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// APIKeyPrefix starts every integrator key: "chk_<id>_<secret>".
const APIKeyPrefix = "chk_"

// NewAPIKey makes a key: its public id, the whole key to show once, and the
// hash of its secret to store.
func NewAPIKey() (id, key string, secretHash []byte) {
	idb := make([]byte, 6)
	sec := make([]byte, 32)
	_, _ = rand.Read(idb) // crypto/rand never fails on Linux
	_, _ = rand.Read(sec)
	id = hex.EncodeToString(idb)
	secret := base64.RawURLEncoding.EncodeToString(sec)
	h := sha256.Sum256([]byte(secret))
	return id, APIKeyPrefix + id + "_" + secret, h[:]
}

// ParseAPIKey splits a presented key into id and secret.
func ParseAPIKey(key string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(key, APIKeyPrefix)
	if !found {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != ""
}

// secretMatches compares a presented secret with a stored hash in constant
// time. The secret is 32 random bytes, so a plain SHA-256 is enough.
func secretMatches(secret string, hash []byte) bool {
	h := sha256.Sum256([]byte(secret))
	return len(hash) == len(h) && subtle.ConstantTimeCompare(h[:], hash) == 1
}

// HashToken hashes a refresh token for storage.
func HashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// RandomToken returns n random bytes, URL-safe base64.
func RandomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
