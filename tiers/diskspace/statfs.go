package diskspace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Statfs reads the space of the filesystem holding dir with statfs(2).
func Statfs(dir string) (Usage, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	bs := uint64(s.Bsize) //nolint:gosec // a block size is positive
	return Usage{Free: s.Bavail * bs, Total: s.Blocks * bs}, nil
}
