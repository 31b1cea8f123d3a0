package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// wantProgress says whether to print progress: as --progress says when it
// was given, else when stderr is a terminal.
func (a *app) wantProgress(given, progress bool) bool {
	if given {
		return progress
	}
	f, ok := a.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressMeter prints "import: 1500 of 40000 rows (3%), 820 rows/s, about
// 47s left" to stderr: on a terminal one line rewritten in place, else a
// line at most every few seconds and the last one. Its methods do nothing
// on a nil meter. stdout is left alone.
type progressMeter struct {
	w           io.Writer
	tty         bool
	what, unit  string
	total, n    int
	start, last time.Time
	printed     bool
	now         func() time.Time
}

func newProgress(w io.Writer, what, unit string, total int) *progressMeter {
	f, ok := w.(*os.File)
	p := &progressMeter{w: w, tty: ok && term.IsTerminal(int(f.Fd())), what: what, unit: unit, total: total, now: time.Now}
	p.start = p.now()
	return p
}

// add counts n more done and prints when it is time.
func (p *progressMeter) add(n int) {
	if p == nil {
		return
	}
	p.n += n
	every := 2 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if now := p.now(); p.n >= p.total || !p.printed || now.Sub(p.last) >= every {
		p.print(now)
	}
}

// done ends the progress line (on a terminal) once work stops.
func (p *progressMeter) done() {
	if p == nil || !p.printed || !p.tty {
		return
	}
	fmt.Fprintln(p.w)
	p.printed = false
}

func (p *progressMeter) print(now time.Time) {
	p.last, p.printed = now, true
	elapsed := now.Sub(p.start)
	line := fmt.Sprintf("%s: %d of %d %s", p.what, p.n, p.total, p.unit)
	if p.total > 0 {
		line += fmt.Sprintf(" (%d%%)", p.n*100/p.total)
	}
	if secs := elapsed.Seconds(); secs > 0 && p.n > 0 {
		rate := float64(p.n) / secs
		line += fmt.Sprintf(", %.0f %s/s", rate, p.unit)
		if left := p.total - p.n; left > 0 {
			line += ", about " + roundDuration(time.Duration(float64(left)/rate*float64(time.Second))).String() + " left"
		} else {
			line += ", done in " + roundDuration(elapsed).String()
		}
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// roundDuration keeps a duration readable: whole seconds, tenths below ten
// seconds, milliseconds below one.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
