package fedtest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/backup"
)

const (
	bkCity   = "city"
	bkDist   = "d-320505"
	bkStreet = "s-320505001"
	bkSquad  = "320505001-squad" // the street's unit
)

// bkFlow is one case the load made and what the test expects of it.
type bkFlow struct {
	kind        string
	rid, id     string
	holder      string
	street      bool   // the street keeps a copy
	before      bool   // its last write was acknowledged before the save started
	distVersion uint64 // the version the district itself acknowledged (0: none)
}

func bkReport(ctx context.Context, f *Federation, node, rid, grid string) (*pb.Case, error) {
	var out *pb.Case
	err := f.Client(node).Do(ctx, func(ctx context.Context, c pb.CaseServiceClient) error {
		resp, err := c.ReportCase(ctx, &pb.ReportCaseRequest{
			RequestId: rid, Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: grid, Description: "占道经营 " + rid,
		})
		if err == nil {
			out = resp.Case
		}
		return err
	})
	return out, err
}

func bkAct(ctx context.Context, f *Federation, node, id, rid string, a pb.Action, role pb.Role, mod func(*pb.ActRequest)) (*pb.Case, error) {
	var out *pb.Case
	err := f.Client(node).Do(ctx, func(ctx context.Context, c pb.CaseServiceClient) error {
		req := &pb.ActRequest{CaseId: id, RequestId: rid, Action: a, Actor: "a-" + role.String(), Role: role, Note: "按规定处置"}
		if mod != nil {
			mod(req)
		}
		resp, err := c.Act(ctx, req)
		if err == nil {
			out = resp.Case
		}
		return err
	})
	return out, err
}

func toSquad(r *pb.ActRequest) { r.Unit, r.TimeLimitMinutes = bkSquad, 240 }

// bkRun makes one case of flow n%5 through the chain.
func bkRun(ctx context.Context, f *Federation, n int) (*bkFlow, error) {
	rid := fmt.Sprintf("bk-%d", n)
	grid := func(block int) string { return fmt.Sprintf("320505%03d%03d%03d", 1+block/10, block%10+1, n%1000) }
	fl := &bkFlow{rid: rid}
	var (
		c   *pb.Case
		err error
	)
	switch n % 5 {
	case 0: // reported and held at the district
		fl.kind, fl.holder = "dist", bkDist
		c, err = bkReport(ctx, f, bkDist, rid, fmt.Sprintf("320505002001%03d", n%1000))
		if c != nil {
			fl.distVersion = c.Version
		}
	case 1: // reported at the district, handed down to the street
		fl.kind, fl.holder, fl.street = "dist-down", bkStreet, true
		if c, err = bkReport(ctx, f, bkDist, rid, grid(0)); err == nil {
			if c, err = bkAct(ctx, f, bkDist, c.Id, rid+"-file", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil); err == nil {
				c, err = bkAct(ctx, f, bkDist, c.Id, rid+"-disp", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, toSquad)
			}
		}
		if c != nil {
			fl.distVersion = c.Version
		}
	case 2: // reported and held at the street
		fl.kind, fl.holder, fl.street = "street", bkStreet, true
		c, err = bkReport(ctx, f, bkStreet, rid, grid(1))
	case 3: // reported at the street, transferred up to the district
		fl.kind, fl.holder, fl.street = "up", bkDist, true
		if c, err = bkReport(ctx, f, bkStreet, rid, grid(2)); err == nil {
			if c, err = bkAct(ctx, f, bkStreet, c.Id, rid+"-file", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil); err == nil {
				c, err = bkAct(ctx, f, bkStreet, c.Id, rid+"-up", pb.Action_ACTION_TRANSFER_UP, pb.Role_ROLE_SHIFT_LEADER, func(r *pb.ActRequest) { r.Note = "区级道路" })
			}
		}
	case 4: // reported at the city, dispatched down to the street
		fl.kind, fl.holder, fl.street = "city-down", bkStreet, true
		if c, err = bkReport(ctx, f, bkCity, rid, grid(3)); err == nil {
			if c, err = bkAct(ctx, f, bkCity, c.Id, rid+"-file", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil); err == nil {
				c, err = bkAct(ctx, f, bkCity, c.Id, rid+"-disp", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, toSquad)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", fl.kind, rid, err)
	}
	fl.id = c.Id
	return fl, nil
}

// TestRestoreDistrictFromSnapshot is issue 17's acceptance 2. A district
// between a city and a street, every group of 3 replicas: writes flow
// through all three tiers; the district's snapshot is saved under that
// load (from a follower); writes go on, including changes to cases the
// snapshot holds; the district's group is destroyed and restored from the
// snapshot. Then every case the district acknowledged before the save is
// there at once; the restored district catches up with its neighbours
// before it takes writes; and once settled every case the city and the
// street hold agrees with the district: nothing lost, no case id given out
// twice, no link stalled, and anti-entropy finds nothing left to repair.
func TestRestoreDistrictFromSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	start := time.Now()
	f := New(t, chain()[:3], 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // generous: a loaded 2-core machine
	defer cancel()
	t.Logf("federation up in %v", time.Since(start).Round(time.Millisecond))

	var (
		mu       sync.Mutex
		flows    []*bkFlow
		errs     []error
		oldDist  []*bkFlow // district cases acknowledged before the save, to change after it
		changed  []*bkFlow // those changed after the save (filed)
		phase    atomic.Int32
		counter  atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
		afterCnt atomic.Int64
	)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n := int(counter.Add(1))
				// After the save, every third step changes a district
				// case the snapshot holds.
				if phase.Load() == 1 && n%3 == 0 {
					mu.Lock()
					var old *bkFlow
					if len(oldDist) > 0 {
						old, oldDist = oldDist[0], oldDist[1:]
					}
					mu.Unlock()
					if old != nil {
						c, err := bkAct(ctx, f, bkDist, old.id, old.rid+"-file", pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil)
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
						} else {
							old.distVersion, old.before = c.Version, false
							changed = append(changed, old)
						}
						mu.Unlock()
						continue
					}
				}
				fl, err := bkRun(ctx, f, n)
				before := phase.Load() == 0 // read after the acknowledgement
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					fl.before = before
					flows = append(flows, fl)
					if before && fl.kind == "dist" {
						oldDist = append(oldDist, fl)
					}
					if !before {
						afterCnt.Add(1)
					}
				}
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 5*time.Minute, "25 cases through the chain", func() bool { mu.Lock(); defer mu.Unlock(); return len(flows) >= 25 })

	// The save, under load, asked of the district's leader.
	dist := f.Groups[bkDist]
	leader := dist.WaitLeader(30 * time.Second)
	phase.Store(1)
	path := filepath.Join(t.TempDir(), "d-320505.snap")
	saved, err := backup.SaveFile(ctx, dist.ClusterAdmin(leader), &pb.SaveSnapshotRequest{}, path)
	if err != nil {
		t.Fatalf("snapshot save: %v", err)
	}
	t.Logf("saved %s: index %d (floor %d) from %s, %d cases, %d bytes", path, saved.Info.Index, saved.Info.MinIndex, saved.Info.NodeId, saved.Cases, saved.Bytes)
	if saved.Info.FromLeader {
		t.Errorf("the snapshot was taken on the leader; followers were up")
	}
	if saved.Info.FederationNode != bkDist {
		t.Errorf("snapshot of %q", saved.Info.FederationNode)
	}
	waitFor(t, 5*time.Minute, "25 cases and 3 changes after the save", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return afterCnt.Load() >= 25 && len(changed) >= 3
	})
	stop.Store(true)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("load: %d errors, first %v", len(errs), errs[0])
	}
	// Everything acknowledged has reached every node that keeps it.
	f.WaitSettled(10 * time.Minute)
	byRid := map[string]*bkFlow{}
	ids := map[string]string{} // case id -> request id
	for _, fl := range flows {
		byRid[fl.rid] = fl
		if other, dup := ids[fl.id]; dup {
			t.Fatalf("case id %s given to %s and %s", fl.id, other, fl.rid)
		}
		ids[fl.id] = fl.rid
	}
	t.Logf("%d cases (%d before the save), %d district cases changed after it", len(flows), len(flows)-int(afterCnt.Load()), len(changed))

	// Destroy the district's group and restore it from the snapshot.
	dist.Destroy()
	restored := dist.RestoreFrom(path)
	if !restored[0].CatchingUp {
		t.Fatalf("a restored federation node does not wait to catch up")
	}
	// Every case the district acknowledged before the save is there, on
	// every replica, straight from the snapshot.
	for _, i := range dist.Up() {
		st := dist.Replica(i).Node.Store()
		for _, fl := range flows {
			if !fl.before || fl.distVersion == 0 {
				continue
			}
			c, err := st.GetCase(fl.id)
			if err != nil || c.Version < fl.distVersion {
				t.Fatalf("district replica %d: case %s (%s) acknowledged at version %d before the save: %v %v",
					i, fl.id, fl.kind, fl.distVersion, c.GetVersion(), err)
			}
		}
	}

	// The restored district catches up with the city and the street on
	// its own (anti-entropy), and takes writes again.
	var fst *pb.FederationStatusResponse
	waitFor(t, 3*time.Minute, "the district to catch up with its neighbours", func() bool {
		l := dist.Leader()
		if l < 0 {
			return false
		}
		r := dist.Replica(l)
		if r == nil {
			return false
		}
		fst, err = r.FederationStatus()
		return err == nil && !fst.CatchingUp
	})
	if fst.Incarnation == 0 {
		t.Errorf("the restored district has no incarnation")
	}
	// New writes at the district: fresh ids, and changes on top of what
	// the lost life made (the filed cases are dispatched).
	var fresh []*pb.Case
	for k := 0; k < 5; k++ {
		c, err := bkReport(ctx, f, bkDist, fmt.Sprintf("bk-after-%d", k), fmt.Sprintf("320505002002%03d", k))
		if err != nil {
			t.Fatalf("report after the restore: %v", err)
		}
		if rid, dup := ids[c.Id]; dup {
			t.Fatalf("the restored district gave out id %s again (it was %s's)", c.Id, rid)
		}
		ids[c.Id] = c.History[0].RequestId
		fresh = append(fresh, c)
	}
	for _, fl := range changed {
		c, err := bkAct(ctx, f, bkDist, fl.id, fl.rid+"-disp-after", pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(r *pb.ActRequest) {
			r.Unit, r.TimeLimitMinutes = "320505-sanitation", 240
		})
		if err != nil {
			t.Fatalf("dispatch %s after the restore: %v", fl.id, err)
		}
		if c.Version != fl.distVersion+1 || c.History[len(c.History)-2].Action != pb.Action_ACTION_FILE {
			t.Fatalf("case %s: version %d after the restore, want %d on top of the filing made after the save", fl.id, c.Version, fl.distVersion+1)
		}
		fl.distVersion = c.Version
	}
	f.WaitSettled(10 * time.Minute)

	// Every case agrees between its holder, the district, the city and
	// (where it keeps one) the street; each id is its own report's.
	check := func(id, holder, rid string, street bool) {
		want := f.stored(t, holder, id)
		if want == nil || want.History[0].RequestId != rid {
			t.Fatalf("case %s at its holder %s: %v (want the report %s)", id, holder, want, rid)
		}
		keepers := []string{bkDist, bkCity}
		if street {
			keepers = append(keepers, bkStreet)
		}
		for _, n := range keepers {
			if got := f.stored(t, n, id); !proto.Equal(got, want) {
				t.Fatalf("case %s: %s has version %d, its holder %s version %d", id, n, got.GetVersion(), holder, want.Version)
			}
		}
	}
	for _, fl := range flows {
		check(fl.id, fl.holder, fl.rid, fl.street)
	}
	for _, c := range fresh {
		check(c.Id, bkDist, c.History[0].RequestId, false)
	}
	for _, fl := range changed {
		if c := f.stored(t, bkCity, fl.id); c.Version != fl.distVersion || c.OwnerUnit != "320505-sanitation" {
			t.Fatalf("case %s at the city: version %d unit %s", fl.id, c.Version, c.OwnerUnit)
		}
	}
	// No link stalled, and nothing left for anti-entropy.
	for name, g := range f.Groups {
		st, err := g.Replica(g.WaitLeader(30 * time.Second)).FederationStatus()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range st.Links {
			if l.LastError != "" || l.LagEntries != 0 {
				t.Errorf("%s → %s: lag %d, error %q", name, l.Peer, l.LagEntries, l.LastError)
			}
		}
	}
	// Both neighbours count the district's entries in its new incarnation
	// (their marks restarted at its floor), and its marks of their links
	// equal what they queued (Settled): the marks moved past the entries
	// the restore lost (advance), which anti-entropy repaired.
	for _, n := range []string{bkCity, bkStreet} {
		g := f.Groups[n]
		ls, err := g.Replica(g.WaitLeader(30 * time.Second)).Node.Store().Link(bkDist)
		if err != nil || ls.InIncarnation != fst.Incarnation {
			t.Errorf("%s counts the district's entries in incarnation %d, the district's is %d (%v)", n, ls.InIncarnation, fst.Incarnation, err)
		}
	}
	dry := f.antiEntropy(ctx, t, bkDist, &pb.AntiEntropyRequest{DryRun: true})
	for _, l := range dry.Links {
		if l.BucketsDiffering != 0 || countsOf(l) != (aeCounts{}) {
			t.Errorf("after the restore, link %s still differs: %v", l.Peer, l)
		}
	}
	t.Logf("restored, caught up and settled in %v", time.Since(start).Round(time.Millisecond))
}
