package fedtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

const (
	aeCity   = "city"
	aeDist   = "d-320505"
	aeStreet = "s-320505001"
	aeComm   = "c-320505001001"
)

// aeFixture is the chain's cases by how they are spread:
//
//	down:   reported at the city, dispatched to a community unit: held by
//	        the community, kept by every node (shared on both of the
//	        street's links)
//	comm:   reported and held at the community (same)
//	street: reported and held at the street (shared street–district only)
//	up:     reported at the street, transferred up: held by the district,
//	        kept by the street as the reporting node (street–district only)
//	dist:   reported and held at the district (not at the street)
type aeFixture struct {
	down, comm, street, up, dist []string
	keepers                      map[string][]string // case id -> nodes keeping it
	holder                       map[string]string
}

func (fx *aeFixture) add(kind *[]string, id, holder string, keepers ...string) {
	*kind = append(*kind, id)
	fx.keepers[id], fx.holder[id] = keepers, holder
}

// aeCall calls fn with a CaseService client of node until it succeeds.
func aeCall(ctx context.Context, f *Federation, node string, fn func(context.Context, pb.CaseServiceClient) error) error {
	return f.Client(node).Do(ctx, fn)
}

func aeReport(ctx context.Context, f *Federation, node, rid, grid string) (*pb.Case, error) {
	var out *pb.Case
	err := aeCall(ctx, f, node, func(ctx context.Context, c pb.CaseServiceClient) error {
		resp, err := c.ReportCase(ctx, &pb.ReportCaseRequest{
			RequestId: rid, Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: grid, Description: "暴露垃圾 " + rid,
		})
		if err == nil {
			out = resp.Case
		}
		return err
	})
	return out, err
}

func aeAct(ctx context.Context, f *Federation, node, id, rid string, a pb.Action, role pb.Role, mod func(*pb.ActRequest)) error {
	return aeCall(ctx, f, node, func(ctx context.Context, c pb.CaseServiceClient) error {
		req := &pb.ActRequest{CaseId: id, RequestId: rid, Action: a, Actor: "a-" + role.String(), Role: role, Note: "n"}
		if mod != nil {
			mod(req)
		}
		_, err := c.Act(ctx, req)
		return err
	})
}

// buildAEFixture makes n cases of each kind, several at a time.
func buildAEFixture(ctx context.Context, t *testing.T, f *Federation, n int) *aeFixture {
	t.Helper()
	fx := &aeFixture{keepers: map[string][]string{}, holder: map[string]string{}}
	all := []string{aeCity, aeDist, aeStreet, aeComm}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		jobs = make(chan func() error)
	)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				if err := job(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		jobs <- func() error { // down
			rid := fmt.Sprintf("ae-down-%d", i)
			c, err := aeReport(ctx, f, aeCity, rid, fmt.Sprintf("320505001001%03d", i%1000))
			if err != nil {
				return err
			}
			if err := aeAct(ctx, f, aeCity, c.Id, rid+"-file", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil); err != nil {
				return err
			}
			if err := aeAct(ctx, f, aeCity, c.Id, rid+"-disp", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) {
				r.Unit, r.TimeLimitMinutes = "320505001001-grid", 240
			}); err != nil {
				return err
			}
			mu.Lock()
			fx.add(&fx.down, c.Id, aeComm, all...)
			mu.Unlock()
			return nil
		}
		jobs <- func() error { // comm
			c, err := aeReport(ctx, f, aeComm, fmt.Sprintf("ae-comm-%d", i), fmt.Sprintf("320505001001%03d", i%1000))
			if err != nil {
				return err
			}
			mu.Lock()
			fx.add(&fx.comm, c.Id, aeComm, all...)
			mu.Unlock()
			return nil
		}
		jobs <- func() error { // street
			c, err := aeReport(ctx, f, aeStreet, fmt.Sprintf("ae-street-%d", i), fmt.Sprintf("320505001002%03d", i%1000))
			if err != nil {
				return err
			}
			mu.Lock()
			fx.add(&fx.street, c.Id, aeStreet, aeStreet, aeDist, aeCity)
			mu.Unlock()
			return nil
		}
		jobs <- func() error { // dist
			c, err := aeReport(ctx, f, aeDist, fmt.Sprintf("ae-dist-%d", i), fmt.Sprintf("320505002001%03d", i%1000))
			if err != nil {
				return err
			}
			mu.Lock()
			fx.add(&fx.dist, c.Id, aeDist, aeDist, aeCity)
			mu.Unlock()
			return nil
		}
		if i%4 == 0 {
			jobs <- func() error { // up
				rid := fmt.Sprintf("ae-up-%d", i)
				c, err := aeReport(ctx, f, aeStreet, rid, fmt.Sprintf("320505001003%03d", i%1000))
				if err != nil {
					return err
				}
				if err := aeAct(ctx, f, aeStreet, c.Id, rid+"-file", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil); err != nil {
					return err
				}
				if err := aeAct(ctx, f, aeStreet, c.Id, rid+"-up", pb.Action_ACTION_TRANSFER_UP, pb.Role_ROLE_SHIFT_LEADER, func(r *pb.ActRequest) { r.Note = "district roads" }); err != nil {
					return err
				}
				mu.Lock()
				fx.add(&fx.up, c.Id, aeDist, aeStreet, aeDist, aeCity)
				mu.Unlock()
				return nil
			}
		}
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("building the fixture: %d errors, first %v", len(errs), errs[0])
	}
	return fx
}

// onEveryReplica runs fn on the store of every replica of node, behind
// the state machine's back: what a disk fault or a bug would do.
func (f *Federation) onEveryReplica(t *testing.T, node string, fn func(*store.Tx) error) {
	t.Helper()
	g := f.Groups[node]
	for _, i := range g.Up() {
		if err := g.Replica(i).Node.Store().Update(fn); err != nil {
			t.Fatalf("%s replica %d: %v", node, i, err)
		}
	}
}

// antiEntropy runs anti-entropy at node (through any replica: followers
// forward to the leader), retrying until no link reports an error.
func (f *Federation) antiEntropy(ctx context.Context, t *testing.T, node string, req *pb.AntiEntropyRequest) *pb.AntiEntropyResponse {
	t.Helper()
	g := f.Groups[node]
	var last error
	for k := 0; ; k++ {
		up := g.Up()
		resp, err := pb.NewOwnershipServiceClient(g.Conn(up[k%len(up)])).AntiEntropy(ctx, req)
		if err == nil {
			var linkErrs []string
			for _, l := range resp.Links {
				if l.Error != "" {
					linkErrs = append(linkErrs, l.Peer+": "+l.Error)
				}
			}
			if len(linkErrs) == 0 {
				return resp
			}
			err = errors.New(strings.Join(linkErrs, "; "))
		}
		last = err
		t.Logf("anti-entropy at %s, attempt %d: %v", node, k+1, err)
		select {
		case <-ctx.Done():
			t.Fatalf("anti-entropy at %s: %v (last error: %v)", node, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func linkOf(t *testing.T, resp *pb.AntiEntropyResponse, peer string) *pb.AntiEntropyLink {
	t.Helper()
	for _, l := range resp.Links {
		if l.Peer == peer {
			return l
		}
	}
	t.Fatalf("no link to %s in %v", peer, resp)
	return nil
}

type aeCounts struct{ missingHere, missingThere, divergent, extra uint32 }

func countsOf(l *pb.AntiEntropyLink) aeCounts {
	return aeCounts{l.MissingHere, l.MissingThere, l.Divergent, l.Extra}
}

// aeMetric sums a counter over every replica of node (leadership may move
// between runs).
func (f *Federation) aeMetric(t *testing.T, node, name string, labels map[string]string) float64 {
	t.Helper()
	var sum float64
	g := f.Groups[node]
	for _, i := range g.Up() {
		mfs, err := g.Replica(i).API.Metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metrics:
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
						continue metrics
					}
				}
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// waitCopies waits until every replica of every node keeping a case holds
// exactly the holder's copy.
func (f *Federation) waitCopies(t *testing.T, fx *aeFixture, ids []string, onlyAt ...string) {
	t.Helper()
	want := map[string]*pb.Case{}
	for _, id := range ids {
		c := f.stored(t, fx.holder[id], id)
		if c == nil || c.Holder != fx.holder[id] {
			t.Fatalf("%s: the holder %s has %v", id, fx.holder[id], c)
		}
		want[id] = c
	}
	var why string
	ok := func() bool {
		for _, id := range ids {
			for _, n := range fx.keepers[id] {
				if len(onlyAt) > 0 && !containsStr(onlyAt, n) {
					continue
				}
				g := f.Groups[n]
				for _, i := range g.Up() {
					got, err := g.Replica(i).Node.Store().GetCase(id)
					if err != nil || !proto.Equal(got, want[id]) {
						why = fmt.Sprintf("%s replica %d: case %s is %v (%v), want the holder's version %d", n, i, id, got.GetVersion(), err, want[id].Version)
						return false
					}
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsStr(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestAntiEntropyRepairsADamagedTier: a chain of 3-replica groups shares a
// few hundred cases; the street's store is damaged on every replica (cases
// deleted, including some it holds; mirrors altered with a matching
// digest; a stray mirror added). Anti-entropy at the street finds exactly
// that damage on each of its two links, repairs it through the street's
// log, and a second run finds nothing. Then a case is dropped at its holder
// (the community) and restored from the street's mirror through the
// community's log.
func TestAntiEntropyRepairsADamagedTier(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	start := time.Now()
	f := New(t, chain(), 3, func(c *config.Config) { c.Federation.AntiEntropyInterval = 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // generous: 45 s on a loaded machine
	defer cancel()
	t.Logf("federation up in %v", time.Since(start).Round(time.Millisecond))
	fx := buildAEFixture(ctx, t, f, 50)
	f.WaitSettled(30 * time.Second)
	t.Logf("federation and %d cases ready in %v", len(fx.keepers), time.Since(start).Round(time.Millisecond))

	// A clean chain: nothing differs on either of the street's links.
	clean := f.antiEntropy(ctx, t, aeStreet, &pb.AntiEntropyRequest{DryRun: true})
	for _, peer := range []string{aeDist, aeComm} {
		l := linkOf(t, clean, peer)
		if l.BucketsDiffering != 0 || countsOf(l) != (aeCounts{}) {
			t.Fatalf("clean chain, link %s: %v", peer, l)
		}
	}
	if l := linkOf(t, clean, aeDist); l.SharedHere != uint64(len(fx.down)+len(fx.comm)+len(fx.street)+len(fx.up)) || l.SharedThere != l.SharedHere {
		t.Fatalf("street–district shares %d here, %d there; want %d", l.SharedHere, l.SharedThere, len(fx.down)+len(fx.comm)+len(fx.street)+len(fx.up))
	}
	if l := linkOf(t, clean, aeComm); l.SharedHere != uint64(len(fx.down)+len(fx.comm)) || l.SharedThere != l.SharedHere {
		t.Fatalf("street–community shares %d here, %d there; want %d", l.SharedHere, l.SharedThere, len(fx.down)+len(fx.comm))
	}

	// Damage the street on every replica.
	deleted := append(append(append([]string{}, fx.down[:5]...), fx.comm[:5]...), fx.street[:4]...)
	altered := append(append(append([]string{}, fx.down[5:8]...), fx.comm[5:8]...), fx.up[:3]...)
	stray := fx.dist[0]
	f.onEveryReplica(t, aeStreet, func(tx *store.Tx) error {
		for _, id := range deleted {
			if err := tx.DeleteCase(id); err != nil {
				return err
			}
		}
		for _, id := range altered {
			old, err := tx.GetCase(id)
			if err != nil {
				return err
			}
			c := proto.Clone(old).(*pb.Case)
			c.Description = "被改坏了 (corrupted)"
			if err := tx.PutCase(old, c); err != nil { // digest follows the damage
				return err
			}
		}
		// A stray mirror: one of the district's own cases, which never
		// passed through the street, claiming the street reported it.
		c := f.stored(t, aeDist, stray)
		c.ReportedAtNode = "320505001"
		return tx.PutCase(nil, c)
	})

	// Found exactly: the district link sees every deleted and altered case
	// the street shares with the district and the stray; the community link
	// what the street shares with the community.
	wantDist := aeCounts{missingHere: 14, divergent: 9, extra: 1}
	wantComm := aeCounts{missingHere: 10, divergent: 6}
	dry := f.antiEntropy(ctx, t, aeStreet, &pb.AntiEntropyRequest{DryRun: true})
	if got := countsOf(linkOf(t, dry, aeDist)); got != wantDist {
		t.Fatalf("dry run, link to the district: %+v, want %+v", got, wantDist)
	}
	if got := countsOf(linkOf(t, dry, aeComm)); got != wantComm {
		t.Fatalf("dry run, link to the community: %+v, want %+v", got, wantComm)
	}
	if c, _ := f.Groups[aeStreet].Replica(f.Groups[aeStreet].Up()[0]).Node.Store().GetCase(deleted[0]); c != nil {
		t.Fatal("a dry run repaired")
	}

	rep := f.antiEntropy(ctx, t, aeStreet, &pb.AntiEntropyRequest{})
	d, c := linkOf(t, rep, aeDist), linkOf(t, rep, aeComm)
	if countsOf(d) != wantDist || countsOf(c) != wantComm {
		t.Fatalf("repair run found %+v and %+v, want %+v and %+v", countsOf(d), countsOf(c), wantDist, wantComm)
	}
	// 14 + 9 + 1 repairs of the street's own copies (a case missing on
	// both links is written once), none needed at the neighbours.
	if n := d.Repaired + c.Repaired; n != 24 {
		t.Fatalf("repaired %d (%d via the district, %d via the community), want 24", n, d.Repaired, c.Repaired)
	}
	if d.BytesSent == 0 || d.BytesReceived == 0 || d.Seconds <= 0 || len(d.Sample) != 20 || d.Buckets != 64 {
		t.Fatalf("link report: %v", d)
	}
	t.Logf("repair: district link %v; community link %v", d, c)

	// Every replica of the street and of both neighbours holds the
	// holder's copy of every case it keeps; the stray is gone.
	var shared []string
	for id := range fx.keepers {
		if id != stray {
			shared = append(shared, id)
		}
	}
	f.waitCopies(t, fx, shared, aeStreet, aeDist, aeComm)
	for _, i := range f.Groups[aeStreet].Up() {
		if c, _ := f.Groups[aeStreet].Replica(i).Node.Store().GetCase(stray); c != nil {
			t.Fatalf("street replica %d still keeps the stray mirror", i)
		}
	}
	f.waitCopies(t, fx, []string{stray}) // the district's own copy untouched

	// Repairs that brought a newer copy travelled on; once settled a second
	// run finds nothing.
	f.WaitSettled(30 * time.Second)
	again := f.antiEntropy(ctx, t, aeStreet, &pb.AntiEntropyRequest{})
	for _, l := range again.Links {
		if l.BucketsDiffering != 0 || countsOf(l) != (aeCounts{}) || l.Repaired != 0 {
			t.Fatalf("second run, link %s: %v", l.Peer, l)
		}
	}

	// The holder loses a case: the community's own report, dropped on every
	// replica. The street (its parent) finds it missing there and restores
	// it from its mirror through the community's log; the community holds
	// it again and works it.
	lost := fx.comm[10]
	f.onEveryReplica(t, aeComm, func(tx *store.Tx) error { return tx.DeleteCase(lost) })
	hr := f.antiEntropy(ctx, t, aeStreet, &pb.AntiEntropyRequest{Peer: aeComm})
	if l := linkOf(t, hr, aeComm); countsOf(l) != (aeCounts{missingThere: 1}) || l.Repaired != 1 || l.Sample[0] != lost {
		t.Fatalf("holder-side damage: %v", l)
	}
	mirror := f.stored(t, aeStreet, lost)
	waitFor(t, 20*time.Second, "the community's replicas get the case back", func() bool {
		for _, i := range f.Groups[aeComm].Up() {
			got, err := f.Groups[aeComm].Replica(i).Node.Store().GetCase(lost)
			if err != nil || !proto.Equal(got, mirror) {
				return false
			}
		}
		return true
	})
	if err := aeAct(ctx, f, aeComm, lost, "ae-lost-file", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil); err != nil {
		t.Fatalf("the restored case cannot be worked at its holder: %v", err)
	}
	f.WaitSettled(30 * time.Second)
	f.waitCopies(t, fx, []string{lost})
	if c := f.stored(t, aeCity, lost); c.Version != mirror.Version+1 {
		t.Fatalf("the city has version %d of the restored case, want %d", c.Version, mirror.Version+1)
	}

	// The counters at the street's /metrics moved.
	for _, m := range []struct {
		labels map[string]string
		name   string
		min    float64
	}{
		{map[string]string{"peer": aeDist}, "cityhub_antientropy_runs_total", 4},
		{map[string]string{"peer": aeDist, "kind": "missing_here"}, "cityhub_antientropy_divergent_total", 28},
		{map[string]string{"peer": aeDist, "kind": "extra"}, "cityhub_antientropy_divergent_total", 2},
		{map[string]string{"peer": aeComm, "kind": "missing_there"}, "cityhub_antientropy_divergent_total", 1},
		{map[string]string{"peer": aeComm}, "cityhub_antientropy_repaired_total", 1 + float64(c.Repaired)},
	} {
		if got := f.aeMetric(t, aeStreet, m.name, m.labels); got < m.min {
			t.Errorf("%s%v = %v, want at least %v", m.name, m.labels, got, m.min)
		}
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}
