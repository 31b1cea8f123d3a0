package replica_test

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// mountSmallFS mounts a tmpfs of size bytes on dir (root, or
// CAP_SYS_ADMIN, needed) and unmounts it when the test ends. It reports
// whether it could; CITYHUB_TEST_NO_MOUNT=1 says no, to exercise the
// portable variant.
func mountSmallFS(t *testing.T, dir string, size int64) (bool, error) {
	if os.Getenv("CITYHUB_TEST_NO_MOUNT") == "1" {
		return false, fmt.Errorf("CITYHUB_TEST_NO_MOUNT=1")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		return false, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return true, nil
}
