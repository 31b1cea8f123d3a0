package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cityhub/cityhub/tiers/store"
)

// BenchmarkVerify measures what a replica's start costs in store checks:
// CheckFiles (every table read and its checksums verified) and Verify (the
// whole store read, every case decoded) on a store of n cases on disk,
// written as the FSM writes them (a sequence, a request record, the
// applied index). CITYHUB_VERIFY_CASES sets n (default 100,000); a
// million takes a few minutes to build.
//
//	CITYHUB_VERIFY_CASES=1000000 go test ./tiers/store -run '^$' -bench Verify -benchtime 3x
func BenchmarkVerify(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CITYHUB_VERIFY_CASES")); err == nil && v > 0 {
		n = v
	}
	dir := filepath.Join(b.TempDir(), "state")
	s := openDisk(b, dir)
	fillVerified(b, s, n)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var size int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && filepath.Ext(fi.Name()) == ".sst" {
			size += fi.Size()
		}
		return nil
	})
	b.Logf("%d cases, %.1f MiB of tables", n, float64(size)/(1<<20))
	b.Run(fmt.Sprintf("CheckFiles/%d", n), func(b *testing.B) {
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := store.CheckFiles(dir); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)/(1<<20), "MiB")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	})
	b.Run(fmt.Sprintf("Verify/%d", n), func(b *testing.B) {
		s := openDisk(b, dir)
		defer s.Close()
		cpu0 := cpuTime()
		for b.Loop() {
			rep, err := s.Verify(store.VerifyOptions{IDPrefix: "110105"})
			if err != nil || rep.Cases != int64(n) {
				b.Fatalf("verify: %+v %v", rep, err)
			}
		}
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	})
}

// cpuTime is the process's user and system CPU time: less sensitive than
// the wall clock to other work on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
