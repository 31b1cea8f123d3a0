package replica_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestConcurrentReportsJoined: many clients report at once, through the
// leader and a follower, and a third of the reports are sent twice at the
// same moment (a client's retry racing its first attempt). The leader
// joins what waits together into batch entries (node/join.go): still every
// report gets one case of its own, a repeated report the same case, and
// every replica holds the same request records.
func TestConcurrentReportsJoined(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	c := testcluster.New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := c.Leader()
	const n = 90
	var mu sync.Mutex
	got := map[string][]string{} // request id → the case ids answered
	var wg sync.WaitGroup
	send := func(i, via int) {
		defer wg.Done()
		id := fmt.Sprint("join-", i)
		r, err := c.Cases(via).ReportCase(ctx, report(id, fmt.Sprint("暴露垃圾 ", i)))
		if err != nil {
			t.Errorf("%s: %v", id, err)
			return
		}
		mu.Lock()
		got[id] = append(got[id], r.Case.Id)
		mu.Unlock()
	}
	for i := range n {
		wg.Add(1)
		go send(i, leader)
		if i%3 == 0 {
			wg.Add(1)
			go send(i, (leader+1)%3)
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	cases := map[string]string{}
	for id, ids := range got {
		for _, cid := range ids[1:] {
			if cid != ids[0] {
				t.Errorf("%s answered cases %v: one report, one case", id, ids)
			}
		}
		if other, dup := cases[ids[0]]; dup {
			t.Errorf("case %s answered to %s and %s", ids[0], other, id)
		}
		cases[ids[0]] = id
	}
	if len(got) != n || len(cases) != n {
		t.Fatalf("%d reports answered with %d cases, want %d and %d", len(got), len(cases), n, n)
	}
	quietIndexes(t, c)
	for _, m := range c.Members {
		for id, ids := range got {
			rec, err := m.R.Node.Store().GetRequest(id)
			if err != nil || rec.CaseId != ids[0] {
				t.Fatalf("%s: request record of %s: %v %v, want case %s", m.ID, id, rec, err, ids[0])
			}
		}
	}
}
