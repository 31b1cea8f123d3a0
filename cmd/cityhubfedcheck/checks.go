package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// sample reads cases at random nodes on their way (linearizable, so a
// group's answers may never go back) and checks each copy is a consistent
// prefix: versions never decrease per node and the history is dense.
func (d *driver) sample(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stop; cancel() }()
	for ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		d.lmu.Lock()
		n := len(d.live)
		var lc liveCase
		if n > 0 {
			lc = d.live[rand.IntN(n)]
		}
		d.lmu.Unlock()
		if lc.r == nil {
			continue
		}
		r, id := lc.r, lc.id
		path := d.path(r.holder)
		g := path[rand.IntN(len(path))]
		var c *pb.Case
		err := d.do(ctx, g, func(ctx context.Context, cl pb.CaseServiceClient) error {
			var err error
			c, err = cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
			return err
		})
		if err != nil {
			continue // not there yet, or stopping
		}
		d.reads.Add(1)
		if msg := historyDense(c); msg != "" {
			d.violate(kOrder, "case %s at %s (sampled): %s", id, g.name, msg)
		}
		r.mu.Lock()
		prev := r.seen[g.name]
		if c.Version < prev {
			d.violate(kOrder, "case %s at %s went back from version %d to %d", id, g.name, prev, c.Version)
		}
		r.seen[g.name] = max(prev, c.Version)
		r.mu.Unlock()
	}
}

// path lists the nodes that must have a case held by holder and reported at
// the root: the holder and its ancestors.
func (d *driver) path(holder *group) []*group {
	var out []*group
	for g := holder; g != nil; g = g.parent {
		out = append(out, g)
	}
	return out
}

// expected lists the nodes that must have the case: holder, its ancestors
// and the reporter.
func (d *driver) expected(r *caseRun) map[string]bool {
	want := map[string]bool{r.reporter.name: true}
	for _, g := range d.path(r.holder) {
		want[g.name] = true
	}
	return want
}

// historyDense checks versions 1..n with n the case's version, each
// request id once.
func historyDense(c *pb.Case) string {
	if uint64(len(c.History)) != c.Version {
		return fmt.Sprintf("version %d with %d history entries", c.Version, len(c.History))
	}
	ids := map[string]bool{}
	for i, h := range c.History {
		if h.Version != uint64(i+1) {
			return fmt.Sprintf("history[%d] has version %d", i, h.Version)
		}
		if h.RequestId == "" || ids[h.RequestId] {
			return fmt.Sprintf("history[%d]: request id %q empty or repeated", i, h.RequestId)
		}
		ids[h.RequestId] = true
	}
	return ""
}

func (d *driver) readExtra() ([]*caseRun, error) {
	if d.o.extra == "" {
		return nil, nil
	}
	f, err := os.Open(d.o.extra)
	if err != nil {
		return nil, fmt.Errorf("--extra: %w", err)
	}
	defer f.Close()
	var out []*caseRun
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if len(fs) != 3 || d.byName[fs[1]] == nil || d.byName[fs[2]] == nil {
			return nil, fmt.Errorf("--extra: bad line %q: want ID HOLDER REPORTER with nodes of the chain", sc.Text())
		}
		out = append(out, &caseRun{n: -1, id: fs[0], holder: d.byName[fs[1]], reporter: d.byName[fs[2]]})
	}
	return out, sc.Err()
}

// waitSettled waits until every link is drained: on each node's leader no
// entry is unacknowledged, and each receiver's high-water mark equals the
// last sequence number its neighbour queued.
func (d *driver) waitSettled() {
	deadline := time.Now().Add(d.o.settle)
	var why string
	for time.Now().Before(deadline) {
		ok, w := d.settled()
		if ok {
			return
		}
		why = w
		time.Sleep(100 * time.Millisecond)
	}
	d.violate(kLinks, "links not drained after %v: %s", d.o.settle, why)
}

func (d *driver) settled() (bool, string) {
	queued := map[[2]string]uint64{}
	received := map[[2]string]uint64{}
	for _, g := range d.o.nodes {
		st, err := d.leaderLinks(g)
		if err != nil {
			return false, err.Error()
		}
		for _, l := range st.Links {
			if !l.Relaying {
				return false, fmt.Sprintf("%s→%s: the leader does not relay", g.name, l.Peer)
			}
			if l.LagEntries != 0 {
				return false, fmt.Sprintf("%s→%s: %d entries unacknowledged (last error %q)", g.name, l.Peer, l.LagEntries, l.LastError)
			}
			queued[[2]string{g.name, l.Peer}] = l.OutLastSeq
			received[[2]string{l.Peer, g.name}] = l.InHighWater
		}
	}
	for k, q := range queued {
		if _, ok := d.byName[k[1]]; !ok {
			continue // a neighbour outside the chain under test
		}
		if received[k] != q {
			return false, fmt.Sprintf("%s→%s: queued %d, received %d", k[0], k[1], q, received[k])
		}
	}
	return true, ""
}

// leaderLinks asks the node's leader for its links.
func (d *driver) leaderLinks(g *group) (*pb.FederationStatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for i, cl := range g.cluster {
		st, err := cl.GetStatus(ctx, &pb.GetStatusRequest{})
		if err != nil || st.State != "Leader" {
			continue
		}
		fs, err := g.cluster[i].FederationStatus(ctx, &pb.FederationStatusRequest{})
		if err != nil {
			return nil, fmt.Errorf("%s: federation status: %w", g.name, err)
		}
		return fs, nil
	}
	return nil, fmt.Errorf("%s: no replica says it leads", g.name)
}

// checkCopies compares every copy of every case with the holder's.
func (d *driver) checkCopies(all []*caseRun) {
	deadline := time.Now().Add(d.o.settle)
	for _, r := range all {
		if r.id == "" {
			continue // never reported: already a violation
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		d.checkCase(ctx, r)
		cancel()
	}
}

func (d *driver) checkCase(ctx context.Context, r *caseRun) {
	var held *pb.Case
	err := d.do(ctx, r.holder, func(ctx context.Context, cl pb.CaseServiceClient) error {
		var err error
		held, err = cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: r.id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
		return err
	})
	if err != nil {
		d.violate(kCopies, "case %s: holder %s: %v", r.id, r.holder.name, err)
		return
	}
	held.AllowedActions, held.WorkingTimeLeft = nil, nil // computed on read
	if held.Holder != r.holder.name {
		d.violate(kCopies, "case %s: %s has it with holder %q", r.id, r.holder.name, held.Holder)
	}
	if msg := historyDense(held); msg != "" {
		d.violate(kCopies, "case %s at its holder %s: %s", r.id, r.holder.name, msg)
	}
	if r.final != nil {
		if !proto.Equal(held, r.final) {
			d.violate(kCopies, "case %s: the holder's copy differs from the answer to the last write:\n%v\nwant\n%v", r.id, held, r.final)
		}
		var got []string
		for _, h := range held.History {
			got = append(got, h.RequestId)
		}
		if !slices.Equal(got, r.rids) {
			d.violate(kCopies, "case %s: history request ids %v, want exactly %v in that order", r.id, got, r.rids)
		}
		if held.State != pb.State_STATE_CLOSED {
			d.violate(kCopies, "case %s: %s at the holder, want closed", r.id, held.State)
		}
		r.mu.Lock()
		for node, v := range r.seen {
			if v > held.Version {
				d.violate(kCopies, "case %s: %s showed version %d, past the final %d", r.id, node, v, held.Version)
			}
		}
		r.mu.Unlock()
	}
	want := d.expected(r)
	for _, g := range d.o.nodes {
		if !want[g.name] {
			// No copy where the case never had to go.
			err := d.do(ctx, g, func(ctx context.Context, cl pb.CaseServiceClient) error {
				_, err := cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: r.id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
				return err
			})
			if status.Code(err) != codes.NotFound {
				d.violate(kCopies, "case %s held by %s: %s answers %v, want NotFound", r.id, r.holder.name, g.name, err)
			}
			continue
		}
		// Every replica of every node on the way converges on the holder's
		// copy, read from its own store.
		for i := range g.addrs {
			var c *pb.Case
			var err error
			for {
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				c, err = g.cases[i].GetCase(cctx, &pb.GetCaseRequest{CaseId: r.id, Consistency: pb.Consistency_CONSISTENCY_STALE})
				cancel()
				d.reads.Add(1)
				if err == nil {
					c.AllowedActions, c.WorkingTimeLeft = nil, nil // computed on read
					if proto.Equal(c, held) {
						break
					}
				}
				if ctx.Err() != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			switch {
			case err != nil:
				d.violate(kCopies, "case %s: %s replica %s: %v", r.id, g.name, g.addrs[i], err)
			case !proto.Equal(c, held):
				d.violate(kCopies, "case %s: %s replica %s has holder %q epoch %d version %d %s, the holder %s has epoch %d version %d %s",
					r.id, g.name, g.addrs[i], c.Holder, c.HolderEpoch, c.Version, c.State, r.holder.name, held.HolderEpoch, held.Version, held.State)
			}
		}
	}
}

// checkLists checks each replica holds exactly the cases that had to reach
// its node: none missing, none made twice.
func (d *driver) checkLists(all []*caseRun) {
	want := map[string]map[string]bool{}
	for _, g := range d.o.nodes {
		want[g.name] = map[string]bool{}
	}
	for _, r := range all {
		if r.id == "" {
			continue
		}
		for n := range d.expected(r) {
			want[n][r.id] = true
		}
	}
	for _, g := range d.o.nodes {
		for i, cl := range g.cases {
			ids, err := listAll(cl)
			if err != nil {
				d.violate(kLists, "%s replica %s: list: %v", g.name, g.addrs[i], err)
				continue
			}
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					d.violate(kLists, "%s replica %s lists %s twice", g.name, g.addrs[i], id)
				}
				seen[id] = true
				if !want[g.name][id] {
					d.violate(kLists, "%s replica %s has case %s that never had to go there", g.name, g.addrs[i], id)
				}
			}
			for id := range want[g.name] {
				if !seen[id] {
					d.violate(kLists, "%s replica %s lacks case %s", g.name, g.addrs[i], id)
				}
			}
		}
	}
}

func listAll(cl pb.CaseServiceClient) ([]string, error) {
	var ids []string
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cl.ListCases(ctx, &pb.ListCasesRequest{PageSize: 500, PageToken: token, Consistency: pb.Consistency_CONSISTENCY_STALE})
		cancel()
		if err != nil {
			return nil, err
		}
		for _, c := range resp.Cases {
			ids = append(ids, c.Id)
		}
		if resp.NextPageToken == "" {
			return ids, nil
		}
		token = resp.NextPageToken
	}
}
