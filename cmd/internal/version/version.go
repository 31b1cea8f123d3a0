// Package version says which build of cityhub a binary is, from the build
// information the Go toolchain records (runtime/debug.ReadBuildInfo): the
// main module's version (a tag, or a pseudo-version made from the commit
// when built in a git checkout), the VCS revision and commit time, and
// whether the tree had uncommitted changes. `make build` and `make image`
// build with -buildvcs=auto so the revision is there; `go run` and a build
// outside a checkout leave it out, and the version then says "(devel)".
//
// A build can also name its version itself: `make build` sets Stamped to
// `git describe --tags --always --dirty` (-ldflags -X), which holds in a
// git worktree too, where the toolchain records no revision.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped is the version set at build time with
//
//	-ldflags "-X github.com/cityhub/cityhub/cmd/internal/version.Stamped=v1.2.3"
//
// When set it is the Version Read reports.
var Stamped string

// Info is one binary's build.
type Info struct {
	// Version is the main module's version: "v1.2.3", a pseudo-version
	// ("v0.0.0-20261122155233-a7bd697abcde", "+dirty" when modified) or
	// "(devel)".
	Version string
	// Revision is the VCS commit ("" when not recorded), Time its commit
	// time (RFC 3339, UTC) and Modified whether the tree had changes.
	Revision, Time string
	Modified       bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	info := Info{Version: "(devel)", GoVersion: runtime.Version()}
	if Stamped != "" {
		info.Version = Stamped
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if v := bi.Main.Version; v != "" {
		info.Version = v
	}
	if Stamped != "" {
		info.Version = Stamped
	}
	info.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one line `--version` prints, e.g.
//
//	cityhubd v0.0.0-20261122155233-a7bd697abcde (revision a7bd697abcde…, 2026-11-22T15:52:33Z) go1.26.8 linux/amd64
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	var vcs []string
	if i.Revision != "" {
		vcs = append(vcs, "revision "+i.Revision)
	}
	if i.Time != "" {
		vcs = append(vcs, i.Time)
	}
	if i.Modified {
		vcs = append(vcs, "modified")
	}
	if len(vcs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(vcs, ", "))
	}
	fmt.Fprintf(&b, " %s %s/%s", i.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// Line is "<program> <Info>".
func Line(program string) string { return program + " " + Read().String() }
