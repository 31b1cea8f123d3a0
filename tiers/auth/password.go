package auth

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// MinPasswordLen is the shortest password an account may have.
const MinPasswordLen = 10

// ErrWeakPassword refuses a password that is too short or too long.
var ErrWeakPassword = errors.New("password too weak")

// bcryptCost is bcrypt's work factor (about 50 ms a check on a server core).
const bcryptCost = 10

// HashPassword hashes a new password with bcrypt (a random salt each time:
// the API hashes, the state machine stores the hash).
func HashPassword(pw string) ([]byte, error) {
	if n := utf8.RuneCountInString(pw); n < MinPasswordLen || len(pw) > 72 {
		return nil, fmt.Errorf("%w: %d to 72 bytes, at least %d characters", ErrWeakPassword, 72, MinPasswordLen)
	}
	return bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
}

// dummyHash is checked against when an account does not exist, so a failed
// login takes as long whether or not the name is known.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("cityhub-no-such-account"), bcryptCost)

// CheckPassword reports whether pw matches hash; a nil hash (no such
// account) costs the same time and never matches.
func CheckPassword(hash []byte, pw string) bool {
	if len(hash) == 0 {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(pw))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
}
