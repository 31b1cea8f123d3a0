//go:build !linux

package replica_test

import (
	"errors"
	"testing"
)

// mountSmallFS mounts nothing outside Linux: the test uses a reserve near
// the free space of an ordinary directory instead.
func mountSmallFS(*testing.T, string, int64) (bool, error) {
	return false, errors.New("tmpfs mounts are tried on Linux only")
}
