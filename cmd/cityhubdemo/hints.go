package main

import (
	"os"
	"path/filepath"
	"strings"
)

// ctlCommand is how the printed hints run cityhubctl: the binary beside
// this one when there is one (make run builds both into bin/), named by a
// path relative to the working directory when it is under it, else go run
// from the repository (go run ./cmd/cityhubdemo).
func ctlCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "go run ./cmd/cityhubctl"
	}
	wd, _ := os.Getwd()
	return ctlCommandFor(exe, wd)
}

// ctlCommandFor is ctlCommand for the executable exe run in wd.
func ctlCommandFor(exe, wd string) string {
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	ctl := filepath.Join(filepath.Dir(exe), "cityhubctl")
	if st, err := os.Stat(ctl); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "go run ./cmd/cityhubctl"
	}
	if wd != "" {
		if rel, err := filepath.Rel(wd, ctl); err == nil && !strings.HasPrefix(rel, "..") {
			if !strings.Contains(rel, string(filepath.Separator)) {
				rel = "." + string(filepath.Separator) + rel
			}
			return rel
		}
	}
	return ctl
}
