package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
)

// fakeLog records what the joiner commits and answers each report with a
// case named after its request id ("bad-…" request ids are refused).
type fakeLog struct {
	mu      sync.Mutex
	entries []*pb.Command
}

var errRefused = errors.New("refused")

func answerOf(requestID string) *fsm.Result {
	if strings.HasPrefix(requestID, "bad-") {
		return &fsm.Result{Err: fmt.Errorf("%s: %w", requestID, errRefused)}
	}
	return &fsm.Result{Case: &pb.Case{Id: "case-" + requestID}}
}

func (l *fakeLog) commit(cmd *pb.Command) (*fsm.Result, error) {
	l.mu.Lock()
	l.entries = append(l.entries, cmd)
	l.mu.Unlock()
	if b := cmd.GetReportBatch(); b != nil {
		res := &fsm.Result{}
		for _, it := range b.Items {
			res.Items = append(res.Items, answerOf(it.RequestId))
		}
		return res, nil
	}
	res := answerOf(cmd.RequestId)
	if res.Err != nil {
		return nil, res.Err
	}
	return res, nil
}

func reportCmd(id, day string, at int64) *pb.Command {
	return &pb.Command{RequestId: id, StampedUnixMs: at, StampedBy: "n1", LocalOffsetS: 8 * 3600,
		Body: &pb.Command_Report{Report: &pb.ReportCase{IdDate: day}}}
}

// joinAll starts a joiner whose log slots are all taken, hands it cmds
// from concurrent callers, waits until every one waits, then frees one
// slot: the joiner must take them all at once. It returns each caller's
// answer by request id.
func joinAll(t *testing.T, allowed bool, cmds []*pb.Command) (*fakeLog, map[string]joinAnswer) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	l := &fakeLog{}
	j := newJoiner(100, done, l.commit, func(*pb.Command) bool { return allowed })
	for range joinInFlight {
		j.slots <- struct{}{}
	}
	go j.run()
	var mu sync.Mutex
	answers := map[string]joinAnswer{}
	var wg sync.WaitGroup
	for _, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := j.join(ctx, c)
			mu.Lock()
			answers[c.RequestId] = joinAnswer{res, err}
			mu.Unlock()
		}()
	}
	deadline := time.Now().Add(time.Minute)
	for len(j.in) < len(cmds) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d reports waiting after a minute", len(j.in), len(cmds))
		}
		time.Sleep(time.Millisecond)
	}
	<-j.slots
	wg.Wait()
	return l, answers
}

func TestJoinerJoinsWaitingReports(t *testing.T) {
	var cmds []*pb.Command
	for i := range 20 {
		id := fmt.Sprint("r-", i)
		if i%7 == 3 {
			id = fmt.Sprint("bad-", i)
		}
		cmds = append(cmds, reportCmd(id, "20261203", int64(1000+i)))
	}
	l, answers := joinAll(t, true, cmds)
	if len(l.entries) != 1 {
		t.Fatalf("%d entries for 20 waiting reports, want 1", len(l.entries))
	}
	b := l.entries[0].GetReportBatch()
	if b == nil || len(b.Items) != 20 {
		t.Fatalf("the entry is %v, want a batch of 20", l.entries[0].Body)
	}
	if got := l.entries[0].StampedUnixMs; got != 1000 {
		t.Errorf("the entry is stamped %d, want the earliest report's 1000", got)
	}
	seen := map[string]bool{}
	for _, it := range b.Items {
		if seen[it.RequestId] || it.Report.GetIdDate() != "20261203" {
			t.Errorf("item %s: twice, or its report changed: %v", it.RequestId, it.Report)
		}
		seen[it.RequestId] = true
	}
	for _, c := range cmds {
		a := answers[c.RequestId]
		if strings.HasPrefix(c.RequestId, "bad-") {
			if !errors.Is(a.err, errRefused) || a.res != nil {
				t.Errorf("%s: answered %v, %v; want its own refusal", c.RequestId, a.res, a.err)
			}
			continue
		}
		if a.err != nil || caseID(a.res) != "case-"+c.RequestId {
			t.Errorf("%s: answered %v, %v; want its own case", c.RequestId, a.res, a.err)
		}
	}
}

func TestJoinerAloneAndAcrossDays(t *testing.T) {
	l, answers := joinAll(t, true, []*pb.Command{reportCmd("alone", "20261203", 5)})
	if len(l.entries) != 1 || l.entries[0].GetReport() == nil || l.entries[0].RequestId != "alone" {
		t.Fatalf("a report alone went into the log as %v, want its own ReportCase", l.entries)
	}
	if a := answers["alone"]; a.err != nil || a.res.Case.Id != "case-alone" {
		t.Fatalf("answered %v, %v", a.res, a.err)
	}

	// Reports stamped for two days never share an entry (nor its stamp).
	var cmds []*pb.Command
	for i := range 6 {
		day := "20261203"
		if i%2 == 1 {
			day = "20261204"
		}
		cmds = append(cmds, reportCmd(fmt.Sprint("d-", i), day, int64(i)))
	}
	l, answers = joinAll(t, true, cmds)
	for _, e := range l.entries {
		days := map[string]bool{}
		if e.GetReport() != nil {
			days[e.GetReport().IdDate] = true
		}
		for _, it := range e.GetReportBatch().GetItems() {
			days[it.Report.IdDate] = true
		}
		if len(days) != 1 {
			t.Errorf("one entry holds reports of %d days: %v", len(days), e)
		}
	}
	for _, c := range cmds {
		if a := answers[c.RequestId]; a.err != nil || caseID(a.res) != "case-"+c.RequestId {
			t.Errorf("%s: answered %v, %v", c.RequestId, a.res, a.err)
		}
	}
}

// A group whose replicas do not all know ReportBatch (a rolling upgrade)
// gets its reports one entry each.
func TestJoinerWithoutBatchesCommitsEachAlone(t *testing.T) {
	var cmds []*pb.Command
	for i := range 5 {
		cmds = append(cmds, reportCmd(fmt.Sprint("old-", i), "20261203", int64(i)))
	}
	l, answers := joinAll(t, false, cmds)
	if len(l.entries) != 5 {
		t.Fatalf("%d entries, want 5", len(l.entries))
	}
	for _, e := range l.entries {
		if e.GetReport() == nil {
			t.Errorf("an entry is %T, want a ReportCase", e.Body)
		}
	}
	for _, c := range cmds {
		if a := answers[c.RequestId]; a.err != nil || caseID(a.res) != "case-"+c.RequestId {
			t.Errorf("%s: answered %v, %v", c.RequestId, a.res, a.err)
		}
	}
}

func caseID(r *fsm.Result) string {
	if r == nil || r.Case == nil {
		return ""
	}
	return r.Case.Id
}

// gatedLog is a fakeLog whose commits each wait until the test opens
// their gate: the test decides which entries are in flight.
type gatedLog struct {
	fakeLog
	sizes chan int // each entry's reports, as it reaches the log
	mu    sync.Mutex
	gates []chan struct{}
}

func (l *gatedLog) commit(cmd *pb.Command) (*fsm.Result, error) {
	g := make(chan struct{})
	l.mu.Lock()
	l.gates = append(l.gates, g)
	l.mu.Unlock()
	n := 1
	if b := cmd.GetReportBatch(); b != nil {
		n = len(b.Items)
	}
	l.sizes <- n
	<-g
	return l.fakeLog.commit(cmd)
}

func (l *gatedLog) open(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.gates[i])
}

// Behind an entry in flight, reports wait until they are as many as that
// entry's, or until nothing is in flight; and every one is answered.
func TestJoinerBehindAnEntryWaitsForCompany(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	l := &gatedLog{sizes: make(chan int, 10)}
	j := newJoiner(100, done, l.commit, func(*pb.Command) bool { return true })
	waits := make(chan int, 10)
	j.waiting = func(n int) { waits <- n }
	var sent []*joined
	hand := func(id string) {
		w := &joined{cmd: reportCmd(id, "20261203", 7), answer: make(chan joinAnswer, 1)}
		sent = append(sent, w)
		j.in <- w
	}
	next := func(want int, what string) {
		t.Helper()
		select {
		case n := <-l.sizes:
			if n != want {
				t.Fatalf("%s: an entry of %d reports, want %d", what, n, want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: no entry after a minute", what)
		}
	}
	// held waits until the joiner holds a group of n back for company,
	// and checks that nothing went into the log meanwhile.
	held := func(n int, what string) {
		t.Helper()
		select {
		case got := <-waits:
			if got != n {
				t.Fatalf("%s: a group of %d waits for company, want %d", what, got, n)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: no group waits for company after a minute", what)
		}
		if len(l.sizes) > 0 {
			t.Fatalf("%s: an entry went behind the one in flight", what)
		}
	}

	// Entry 0: ten reports that waited while the log was busy.
	for range joinInFlight {
		j.slots <- struct{}{}
	}
	go j.run()
	for i := range 10 {
		hand(fmt.Sprint("a-", i))
	}
	<-j.slots
	next(10, "the first ten")
	<-j.slots // the log holds entry 0 alone

	// One report behind it waits, and goes with nine more.
	hand("b-0")
	held(1, "one report behind ten")
	for i := 1; i < 10; i++ {
		hand(fmt.Sprint("b-", i))
	}
	next(10, "ten behind ten")

	// Entry 0 done: one report behind entry 1 waits until entry 1 is done
	// too, then goes alone.
	l.open(0)
	hand("c-0")
	held(1, "one report behind entry 1")
	l.open(1)
	next(1, "one report, nothing in flight")
	l.open(2)

	for _, w := range sent {
		select {
		case a := <-w.answer:
			if a.err != nil || caseID(a.res) != "case-"+w.cmd.RequestId {
				t.Errorf("%s: answered %v, %v", w.cmd.RequestId, a.res, a.err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: no answer after a minute", w.cmd.RequestId)
		}
	}
	if len(l.entries) != 3 {
		t.Errorf("%d entries in the log, want 3", len(l.entries))
	}
}

// A report that comes to an idle joiner is committed from its caller's
// goroutine: it needs no joiner goroutine to go into the log (none runs
// here), and goes in as the ReportCase it is; behind an entry in flight,
// it waits to be joined.
func TestJoinerAloneCommitsFromTheCaller(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	l := &fakeLog{}
	j := newJoiner(100, done, l.commit, func(*pb.Command) bool { return true })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := j.join(ctx, reportCmd("quiet", "20261203", 5))
	if err != nil || caseID(res) != "case-quiet" {
		t.Fatalf("answered %v, %v", res, err)
	}
	if len(l.entries) != 1 || l.entries[0].GetReport() == nil {
		t.Fatalf("entries %v, want the ReportCase alone", l.entries)
	}
	if len(j.slots) != 0 || j.busy.Load() != 0 {
		t.Fatalf("%d slots still taken, %d busy", len(j.slots), j.busy.Load())
	}

	// An entry in flight, or none but the newest held many reports (the
	// clients of a big entry just answered): the next report is handed
	// to the joiner (and, with no joiner running, waits until its
	// context ends).
	handed := func(what string, want int) {
		t.Helper()
		short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancelShort()
		if _, err := j.join(short, reportCmd(what, "20261203", 6)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v, want it handed to the joiner", what, err)
		}
		if len(l.entries) != 1 || len(j.in) != want {
			t.Fatalf("%s: %d entries, %d handed to the joiner; want 1 and %d", what, len(l.entries), len(j.in), want)
		}
	}
	j.busy.Add(1)
	handed("behind an entry in flight", 1)
	j.busy.Add(-1)
	j.newest.Store(30)
	handed("after an entry of 30 reports", 2)
}

// BenchmarkJoinQuiet is one client's report on a quiet log: committed
// from the caller's goroutine, against handed to the joiner's goroutine
// and from there to a committing one (the commit itself is a no-op).
func BenchmarkJoinQuiet(b *testing.B) {
	for _, handed := range []bool{false, true} {
		b.Run(fmt.Sprint("handed=", handed), func(b *testing.B) {
			done := make(chan struct{})
			defer close(done)
			commit := func(cmd *pb.Command) (*fsm.Result, error) { return &fsm.Result{}, nil }
			j := newJoiner(100, done, commit, func(*pb.Command) bool { return true })
			go j.run()
			ctx := context.Background()
			cmd := reportCmd("q", "20261203", 5)
			for b.Loop() {
				if handed {
					j.newest.Store(2)
				}
				if _, err := j.join(ctx, cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
