package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	i := Info{Version: "v0.0.0-20261122155233-a7bd697abcde+dirty", Revision: "a7bd697abcde", Time: "2026-11-22T15:52:33Z", Modified: true, GoVersion: "go1.26.8"}
	want := "v0.0.0-20261122155233-a7bd697abcde+dirty (revision a7bd697abcde, 2026-11-22T15:52:33Z, modified) go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH
	if got := i.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	bare := Info{Version: "(devel)", GoVersion: "go1.26.8"}
	if got := bare.String(); got != "(devel) go1.26.8 "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("without VCS: %q", got)
	}
}

// TestRead: a test binary has build information; its toolchain is the
// running one.
func TestRead(t *testing.T) {
	i := Read()
	if i.GoVersion != runtime.Version() {
		t.Errorf("GoVersion %q, running %q", i.GoVersion, runtime.Version())
	}
	if i.Version == "" || !strings.HasPrefix(Line("x"), "x ") {
		t.Errorf("Read() = %+v, Line = %q", i, Line("x"))
	}
}

// TestStamped: a version set at build time (make build's -ldflags -X) is
// the one reported.
func TestStamped(t *testing.T) {
	old := Stamped
	t.Cleanup(func() { Stamped = old })
	Stamped = "v1.2.3-4-gabcdef0-dirty"
	if i := Read(); i.Version != Stamped || !strings.HasPrefix(Line("cityhubd"), "cityhubd v1.2.3-4-gabcdef0-dirty ") {
		t.Errorf("Read() = %+v, Line = %q", i, Line("cityhubd"))
	}
}
