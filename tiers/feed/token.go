package feed

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadToken is returned for a resume token this feed did not issue.
var ErrBadToken = errors.New("bad resume token")

// tokenVersion prefixes every token, so the format can change.
const tokenVersion = "cf1"

// Token is the opaque resume token of a position in group's feed: the
// revision, bound to the group (a tier node's replicas share one feed;
// another node's revisions mean other changes).
func Token(group string, revision uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(tokenVersion + ":" + group + ":" + strconv.FormatUint(revision, 10)))
}

// ParseToken returns the revision of a token issued by group's feed.
func ParseToken(group, token string) (uint64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, fmt.Errorf("%w: not a token of this feed", ErrBadToken)
	}
	rest, ok := strings.CutPrefix(string(raw), tokenVersion+":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return 0, fmt.Errorf("%w: not a token of this feed", ErrBadToken)
	}
	if rest[:i] != group {
		return 0, fmt.Errorf("%w: it was issued by node %q, this is %q (each tier node has its own feed)", ErrBadToken, rest[:i], group)
	}
	rev, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: not a token of this feed", ErrBadToken)
	}
	return rev, nil
}
