package antientropy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

const (
	// versionsPerCall bounds the versions one CaseVersions call asks for
	// (by the peer's bucket counts): about 5 MiB.
	versionsPerCall = 100_000
	// fetchPerCall bounds the ids of one FetchCases call.
	fetchPerCall = 256
	// repairPerCall and repairBytes bound one Repair call or one
	// RepairCases command (one Raft entry).
	repairPerCall = 256
	repairBytes   = 1 << 20
	// sampleSize is how many differing ids a report names.
	sampleSize = 20
)

// counted wraps a Peer and adds up the bytes of its requests and answers.
type counted struct {
	p          Peer
	mu         sync.Mutex
	sent, recv uint64
}

func (c *counted) add(req, resp proto.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent += uint64(proto.Size(req))
	if resp != nil {
		c.recv += uint64(proto.Size(resp))
	}
}

func (c *counted) Digest(ctx context.Context, req *pb.DigestRequest) (*pb.DigestResponse, error) {
	resp, err := c.p.Digest(ctx, req)
	c.add(req, resp)
	return resp, err
}

func (c *counted) CaseVersions(ctx context.Context, req *pb.CaseVersionsRequest) (*pb.CaseVersionsResponse, error) {
	resp, err := c.p.CaseVersions(ctx, req)
	c.add(req, resp)
	return resp, err
}

func (c *counted) FetchCases(ctx context.Context, req *pb.FetchCasesRequest) (*pb.FetchCasesResponse, error) {
	resp, err := c.p.FetchCases(ctx, req)
	c.add(req, resp)
	return resp, err
}

func (c *counted) Repair(ctx context.Context, req *pb.RepairRequest) (*pb.RepairResponse, error) {
	resp, err := c.p.Repair(ctx, req)
	c.add(req, resp)
	return resp, err
}

// finding is one case that differs on a link.
type finding struct {
	id       string
	d        Decision
	mine     Copy
	theirs   Copy
	theirCop *pb.Case // the peer's copy, when fetched
}

// comparison is one link being compared and repaired.
type comparison struct {
	st       *store.Store
	l        *link
	peer     *counted
	buckets  uint32 // fixed by configuration; 0: automatic
	hint     uint64 // shared count of the last comparison of this link
	rep      *pb.AntiEntropyLink
	findings []finding
	elapsed  time.Duration
	phases   []time.Duration // end of round 1, 2 and 3 since the start (logged)
}

func newComparison(st *store.Store, l *link, p Peer, buckets uint32, hint uint64) *comparison {
	return &comparison{st: st, l: l, peer: &counted{p: p}, buckets: buckets, hint: hint, rep: &pb.AntiEntropyLink{Peer: l.peer}}
}

func (c *comparison) timed(f func() error) error {
	start := time.Now()
	err := f()
	c.elapsed += time.Since(start)
	c.rep.BytesSent, c.rep.BytesReceived = c.peer.sent, c.peer.recv
	c.rep.Seconds = c.elapsed.Seconds()
	return err
}

// find runs the rounds of a comparison and classifies every difference:
//
//  1. summarise the shared cases here (MaxBuckets, folded later); choose B
//     (configured, or AutoBuckets of the larger of this end's count and the
//     last comparison's); Digest(B) at the peer. When automatic and the
//     peer shares many more cases than B suits, ask again with more.
//  2. CaseVersions for the buckets that differ, while this end lists its
//     own copies in them.
//  3. FetchCases for the peer's copies that may stand (or that the peer
//     keeps without counting them as shared), read this end's copies that
//     the peer lists and this end does not count.
//  4. Decide each case.
func (c *comparison) find(ctx context.Context) error {
	return c.timed(func() error { return c.findRounds(ctx) })
}

func (c *comparison) findRounds(ctx context.Context) error {
	l := c.l
	// Round 1. With the number of buckets known beforehand (configured, or
	// from the last comparison of this link) the peer scans while this end
	// does.
	var (
		sum     *Summary
		sumErr  error
		theirs  []*pb.BucketDigest
		there   uint64
		b       = c.buckets
		early   = b != 0 || c.hint > 0
		err     error
		round1  sync.WaitGroup
		started = time.Now()
	)
	if b == 0 {
		b = AutoBuckets(c.hint)
	}
	round1.Add(1)
	go func() {
		defer round1.Done()
		sum, sumErr = summarize(c.st, l)
	}()
	if early {
		theirs, there, err = c.digest(ctx, b)
	}
	round1.Wait()
	if sumErr != nil {
		return fmt.Errorf("summarise: %w", sumErr)
	}
	if err != nil {
		return err
	}
	c.rep.SharedHere = sum.Shared
	if !early {
		b = AutoBuckets(sum.Shared)
		if theirs, there, err = c.digest(ctx, b); err != nil {
			return err
		}
	}
	// Automatic: when the peer shares many more cases than b suits (it
	// kept what this end lost), ask again with more buckets.
	if nb := AutoBuckets(max(sum.Shared, there)); c.buckets == 0 && nb > b {
		b = nb
		if theirs, there, err = c.digest(ctx, b); err != nil {
			return err
		}
	}
	c.phases = append(c.phases, time.Since(started))
	c.rep.Buckets, c.rep.SharedThere = b, there
	mine := sum.Fold(b)
	diff, err := Differing(mine, theirs)
	if err != nil {
		return fmt.Errorf("%s's digest: %w", l.peer, err)
	}
	c.rep.BucketsDiffering = uint32(len(diff))
	if len(diff) == 0 {
		return nil
	}
	want := make([]bool, b)
	for _, d := range diff {
		want[d] = true
	}
	counts := map[uint32]uint64{}
	for _, t := range theirs {
		counts[t.Bucket] = t.Count
	}

	// Round 2: both ends list what they share in those buckets.
	var (
		local    map[string]Copy
		localErr error
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		local, localErr = copiesIn(c.st, l, b, want)
	}()
	remote, err := c.versions(ctx, b, diff, counts)
	wg.Wait()
	c.phases = append(c.phases, time.Since(started))
	if err != nil {
		return err
	}
	if localErr != nil {
		return fmt.Errorf("list own versions: %w", localErr)
	}

	// Round 3: what each end keeps without listing, and the peer's copies
	// that may stand.
	ids := make([]string, 0, len(local)+len(remote))
	for id := range local {
		ids = append(ids, id)
	}
	for id := range remote {
		if _, ok := local[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var unlisted []string
	for _, id := range ids {
		if _, ok := local[id]; !ok {
			unlisted = append(unlisted, id)
		}
	}
	if err := c.readOwn(unlisted, local); err != nil {
		return err
	}
	var fetch []string
	fetching := map[string]bool{}
	for _, id := range ids {
		m, t := local[id], remote[id]
		if same(m, t) {
			continue
		}
		// The peer may keep a copy it does not count as shared, or its
		// copy may stand: either way this end needs the whole of it.
		if here, _ := l.winner(m, t); !t.Present || !here {
			fetch = append(fetch, id)
			fetching[id] = true
		}
	}
	fetched, err := c.fetch(ctx, fetch)
	if err != nil {
		return err
	}
	c.phases = append(c.phases, time.Since(started))

	// Decide.
	for _, id := range ids {
		f := finding{id: id, mine: local[id], theirs: remote[id]}
		if cs, ok := fetched[id]; ok {
			f.theirCop = cs
			if f.theirs, err = copyOf(cs); err != nil {
				return err
			}
		} else if fetching[id] {
			f.theirs = Copy{} // listed, then gone; or never kept
		}
		f.d = l.decide(f.mine, f.theirs)
		if f.d.Kind == Same {
			continue
		}
		if !f.d.WinnerHere && f.d.Fix == FixWrite && f.theirCop == nil {
			continue // the peer's copy went away meanwhile: next time
		}
		c.count(f)
		c.findings = append(c.findings, f)
	}
	return nil
}

func (c *comparison) count(f finding) {
	switch f.d.Kind {
	case MissingHere:
		c.rep.MissingHere++
	case MissingThere:
		c.rep.MissingThere++
	case Divergent:
		c.rep.Divergent++
	case Extra:
		c.rep.Extra++
	}
	if len(c.rep.Sample) < sampleSize {
		c.rep.Sample = append(c.rep.Sample, f.id)
	}
}

func (c *comparison) digest(ctx context.Context, b uint32) ([]*pb.BucketDigest, uint64, error) {
	resp, err := c.peer.Digest(ctx, &pb.DigestRequest{From: c.l.self, To: c.l.peer, Buckets: b})
	if err != nil {
		return nil, 0, fmt.Errorf("digest: %w", err)
	}
	var n uint64
	for _, t := range resp.Buckets {
		n += t.Count
	}
	return resp.Buckets, n, nil
}

// versions asks the peer for the versions in the differing buckets, in
// calls of about versionsPerCall versions (by the peer's bucket counts).
func (c *comparison) versions(ctx context.Context, b uint32, diff []uint32, counts map[uint32]uint64) (map[string]Copy, error) {
	out := map[string]Copy{}
	for start := 0; start < len(diff); {
		end, n := start, uint64(0)
		for end < len(diff) && (end == start || n+counts[diff[end]] <= versionsPerCall) {
			n += counts[diff[end]]
			end++
		}
		resp, err := c.peer.CaseVersions(ctx, &pb.CaseVersionsRequest{From: c.l.self, To: c.l.peer, Buckets: b, Bucket: diff[start:end]})
		if err != nil {
			return nil, fmt.Errorf("case versions: %w", err)
		}
		for _, v := range resp.Cases {
			out[v.CaseId] = Copy{Present: true, Version: Version{v.HolderEpoch, v.Version, v.Hash}, Holder: v.Holder}
		}
		start = end
	}
	return out, nil
}

// readOwn adds this end's copies of ids that it keeps without counting
// them as shared.
func (c *comparison) readOwn(ids []string, into map[string]Copy) error {
	if len(ids) == 0 {
		return nil
	}
	return c.st.View(func(tx *store.Tx) error {
		for _, id := range ids {
			cs, err := tx.GetCase(id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				continue
			case err != nil:
				return err
			}
			cp, err := copyOf(cs)
			if err != nil {
				return err
			}
			into[id] = cp
		}
		return nil
	})
}

func (c *comparison) fetch(ctx context.Context, ids []string) (map[string]*pb.Case, error) {
	out := map[string]*pb.Case{}
	for start := 0; start < len(ids); start += fetchPerCall {
		resp, err := c.peer.FetchCases(ctx, &pb.FetchCasesRequest{From: c.l.self, To: c.l.peer, CaseIds: ids[start:min(start+fetchPerCall, len(ids))]})
		if err != nil {
			return nil, fmt.Errorf("fetch cases: %w", err)
		}
		for _, cs := range resp.Cases {
			out[cs.GetId()] = cs
		}
	}
	return out, nil
}

// pulls are the repairs of this end: the peer's copies to take and this
// end's copies to drop.
func (c *comparison) pulls() (write []*pb.Case, drop []string) {
	for _, f := range c.findings {
		if f.d.WinnerHere {
			continue
		}
		switch f.d.Fix {
		case FixWrite:
			write = append(write, f.theirCop)
		case FixDrop:
			drop = append(drop, f.id)
		}
	}
	return write, drop
}

// push sends the peer what it needs, decided again against this end's
// copies as they are now (after this end's own repairs), so a copy this
// end has just had repaired is never sent in its damaged form. It returns
// how many entries the peer applied.
func (c *comparison) push(ctx context.Context) (uint32, error) {
	var applied uint32
	err := c.timed(func() error {
		var ids []string
		for _, f := range c.findings {
			if f.d.WinnerHere && f.d.Fix != FixNone {
				ids = append(ids, f.id)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		now := map[string]*pb.Case{}
		if err := c.st.View(func(tx *store.Tx) error {
			for _, id := range ids {
				cs, err := tx.GetCase(id)
				switch {
				case errors.Is(err, store.ErrNotFound):
					continue
				case err != nil:
					return err
				}
				now[id] = cs
			}
			return nil
		}); err != nil {
			return err
		}
		req := &pb.RepairRequest{From: c.l.self, To: c.l.peer}
		size := 0
		send := func() error {
			if len(req.Cases)+len(req.Drop) == 0 {
				return nil
			}
			resp, err := c.peer.Repair(ctx, req)
			if err != nil {
				return fmt.Errorf("repair: %w", err)
			}
			applied += resp.Applied
			req, size = &pb.RepairRequest{From: c.l.self, To: c.l.peer}, 0
			return nil
		}
		for _, f := range c.findings {
			if !f.d.WinnerHere || f.d.Fix == FixNone {
				continue
			}
			cur, err := copyOf(now[f.id])
			if err != nil {
				return err
			}
			d := c.l.decide(cur, f.theirs)
			if !d.WinnerHere {
				continue
			}
			switch d.Fix {
			case FixWrite:
				req.Cases = append(req.Cases, now[f.id])
				size += proto.Size(now[f.id])
			case FixDrop:
				req.Drop = append(req.Drop, f.id)
				size += len(f.id)
			default:
				continue
			}
			if len(req.Cases)+len(req.Drop) >= repairPerCall || size >= repairBytes {
				if err := send(); err != nil {
					return err
				}
			}
		}
		return send()
	})
	return applied, err
}
