package diskspace

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeFS serves Stat from a table the test changes.
type fakeFS struct {
	mu    sync.Mutex
	usage map[string]Usage
	err   error
}

func (f *fakeFS) stat(dir string) (Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Usage{}, f.err
	}
	u, ok := f.usage[dir]
	if !ok {
		return Usage{}, fmt.Errorf("statfs %s: %w", dir, os.ErrNotExist)
	}
	return u, nil
}

func (f *fakeFS) set(dir string, free, total uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.usage[dir] = Usage{Free: free, Total: total}
}

func newFake(t *testing.T, opts Options) (*Monitor, *fakeFS, *bytes.Buffer) {
	t.Helper()
	fs := &fakeFS{usage: map[string]Usage{}}
	for _, d := range opts.Dirs {
		fs.usage[d] = Usage{Free: 100 << 20, Total: 1 << 30}
	}
	var logs bytes.Buffer
	opts.Stat = fs.stat
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	return New(opts), fs, &logs
}

func TestMonitorRefusesBelowReserveAndResumesAboveMargin(t *testing.T) {
	m, fs, logs := newFake(t, Options{Dirs: []string{"/data"}, Reserve: 16 << 20})
	if err := m.Admit("report"); err != nil {
		t.Fatalf("100 MiB free, 16 MiB reserve: %v", err)
	}
	fs.set("/data", 10<<20, 1<<30)
	st := m.Check()
	if !st.Low || st.Free != 10<<20 || st.Reserve != 16<<20 || st.Dir != "/data" {
		t.Fatalf("state = %+v", st)
	}
	err := m.Admit("report")
	var le *LowError
	if !errors.Is(err, ErrLow) || !errors.As(err, &le) || le.Free != 10<<20 || le.Reserve != 16<<20 {
		t.Fatalf("admit below the reserve: %v", err)
	}
	if !strings.Contains(err.Error(), "10 MiB free for /data, below the reserve of 16 MiB") {
		t.Fatalf("message: %v", err)
	}
	_ = m.Admit("report")
	_ = m.Admit("deliver")
	if got := m.Refused(); got["report"] != 2 || got["deliver"] != 1 {
		t.Fatalf("refused = %v", got)
	}
	// Just above the reserve is not enough: the margin keeps it low.
	fs.set("/data", 16<<20+1, 1<<30)
	if st := m.Check(); !st.Low {
		t.Fatalf("resumed inside the margin: %+v", st)
	}
	fs.set("/data", 17<<20, 1<<30)
	if st := m.Check(); st.Low || m.Admit("report") != nil {
		t.Fatalf("not resumed at 17 MiB (resume at %d): %+v", st.Resume(), st)
	}
	// Many samples, one line per crossing.
	for i := 0; i < 5; i++ {
		m.Check()
	}
	if n := strings.Count(logs.String(), "disk space below the reserve"); n != 1 {
		t.Fatalf("%d low lines:\n%s", n, logs)
	}
	if n := strings.Count(logs.String(), "disk space back above the reserve"); n != 1 {
		t.Fatalf("%d resume lines:\n%s", n, logs)
	}
}

func TestMonitorPercentAndWorstDirectory(t *testing.T) {
	m, fs, _ := newFake(t, Options{Dirs: []string{"/data", "/data/raft", "/data/missing"}, Reserve: 1 << 20, ReservePercent: 10})
	delete(fs.usage, "/data/missing") // not created yet: skipped
	fs.set("/data", 500<<20, 1<<30)   // reserve 102.4 MiB: plenty
	fs.set("/data/raft", 50<<20, 200<<20)
	st := m.Check()
	if st.Err != nil || st.Low || st.Dir != "/data/raft" || st.Reserve != 20<<20 {
		t.Fatalf("state = %+v", st)
	}
	fs.set("/data/raft", 10<<20, 200<<20)
	if st := m.Check(); !st.Low || st.Dir != "/data/raft" {
		t.Fatalf("raft's filesystem low: %+v", st)
	}
}

func TestResumeMargin(t *testing.T) {
	if got := (State{Reserve: 512 << 20}).Resume(); got != 544<<20 {
		t.Errorf("512 MiB resumes at %d", got)
	}
	if got := (State{Reserve: 100 << 30}).Resume(); got != 100<<30+64<<20 {
		t.Errorf("100 GiB resumes at %d", got)
	}
}

func TestMonitorZeroReserveNeverRefuses(t *testing.T) {
	m, fs, _ := newFake(t, Options{Dirs: []string{"/data"}})
	fs.set("/data", 0, 1<<30)
	if st := m.Check(); st.Low || m.Admit("report") != nil || st.Free != 0 {
		t.Fatalf("reserve 0 refused: %+v", st)
	}
}

func TestMonitorStatErrorKeepsLastState(t *testing.T) {
	m, fs, logs := newFake(t, Options{Dirs: []string{"/data"}, Reserve: 16 << 20})
	fs.set("/data", 1<<20, 1<<30)
	m.Check()
	fs.err = errors.New("input/output error")
	st := m.Check()
	m.Check()
	if st.Err == nil || !st.Low || st.Free != 1<<20 {
		t.Fatalf("state after a failed sample = %+v", st)
	}
	if n := strings.Count(logs.String(), "cannot read the free disk space"); n != 1 {
		t.Fatalf("%d error lines:\n%s", n, logs)
	}
	fs.err = nil
	fs.set("/data", 100<<20, 1<<30)
	if st := m.Check(); st.Err != nil || st.Low {
		t.Fatalf("state = %+v", st)
	}
}

func TestStatusDetails(t *testing.T) {
	err := fmt.Errorf("propose: %w", &LowError{Dir: "/d", Free: 1, Reserve: 2})
	st := WithDetails(status.New(codes.Unavailable, err.Error()), err)
	if !IsRefusal(st.Err()) || !IsRefusal(err) {
		t.Fatal("refusal not recognised")
	}
	if IsRefusal(status.Error(codes.Unavailable, "not the leader")) || IsRefusal(errors.New("x")) || IsRefusal(nil) {
		t.Fatal("another error taken for a refusal")
	}
	if len(WithDetails(status.New(codes.Internal, "x"), errors.New("x")).Details()) != 0 {
		t.Fatal("details on another error")
	}
}

func TestStatfsReadsARealDirectory(t *testing.T) {
	u, err := Statfs(t.TempDir())
	if err != nil || u.Total == 0 || u.Free > u.Total {
		t.Fatalf("statfs: %+v, %v", u, err)
	}
	if _, err := Statfs("/no/such/dir"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 512 << 20: "512 MiB", 3<<30 + 1<<29: "3.5 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
