package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/diskspace"
)

// replica is a CaseService on loopback whose ReportCase answers by a
// script: answer(n) for the n-th call (1-based). It records the request
// id of every call.
type replica struct {
	pb.UnimplementedCaseServiceServer
	addr   string
	answer func(n int) error

	mu  sync.Mutex
	ids []string
}

func (r *replica) ReportCase(_ context.Context, req *pb.ReportCaseRequest) (*pb.CaseResponse, error) {
	r.mu.Lock()
	r.ids = append(r.ids, req.RequestId)
	n := len(r.ids)
	r.mu.Unlock()
	if err := r.answer(n); err != nil {
		return nil, err
	}
	return &pb.CaseResponse{Case: &pb.Case{Id: "c-" + req.RequestId}}, nil
}

func (r *replica) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

func serve(t *testing.T, answer func(n int) error) *replica {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{addr: l.Addr().String(), answer: answer}
	srv := grpc.NewServer()
	pb.RegisterCaseServiceServer(srv, r)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return r
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	notLeader = status.Error(codes.Unavailable, "this replica is not the leader")
	badInput  = status.Error(codes.InvalidArgument, "grid_code: 15 digits")
)

// diskLow is the disk reserve's refusal as tiers/errcode answers it, but
// with a RetryInfo of 1 ms instead of diskspace.RetryAfter (10 s), so the
// test does not wait.
func diskLow() error {
	st, err := status.New(codes.Unavailable, "below the disk reserve").WithDetails(
		&errdetails.ErrorInfo{Reason: diskspace.Reason, Domain: "cityhub"},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Millisecond)})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// fast is a policy for the tests: delays of a few milliseconds.
var fast = Policy{Initial: time.Millisecond, Max: 4 * time.Millisecond}

func sameIDs(t *testing.T, ids []string, want string, n int) {
	t.Helper()
	if len(ids) != n {
		t.Fatalf("%d calls (%v), want %d", len(ids), ids, n)
	}
	for i, id := range ids {
		if id != want {
			t.Fatalf("call %d carried request id %q, want %q every time", i+1, id, want)
		}
	}
}

func TestDoRetriesUnavailableThenSucceeds(t *testing.T) {
	const failures = 3
	r := serve(t, func(n int) error {
		if n <= failures {
			return notLeader
		}
		return nil
	})
	cl := pb.NewCaseServiceClient(dial(t, r.addr))
	req := &pb.ReportCaseRequest{RequestId: "rid-do-1"}
	var resp *pb.CaseResponse
	err := Do(context.Background(), fast, func(ctx context.Context) (err error) {
		resp, err = cl.ReportCase(ctx, req)
		return err
	})
	if err != nil || resp.GetCase().GetId() != "c-rid-do-1" {
		t.Fatalf("Do: %v, %v", resp, err)
	}
	sameIDs(t, r.calls(), "rid-do-1", failures+1)
}

func TestDoStopsAtAFinalError(t *testing.T) {
	r := serve(t, func(int) error { return badInput })
	cl := pb.NewCaseServiceClient(dial(t, r.addr))
	err := Do(context.Background(), fast, func(ctx context.Context) error {
		_, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "rid-final"})
		return err
	})
	var e *Error
	if !errors.As(err, &e) || e.Outcome != Final || e.Attempts != 1 || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Do: %v (%#v), want a Final *Error after 1 attempt keeping InvalidArgument", err, e)
	}
	sameIDs(t, r.calls(), "rid-final", 1)
}

func TestDoBoundedAttempts(t *testing.T) {
	r := serve(t, func(int) error { return notLeader })
	cl := pb.NewCaseServiceClient(dial(t, r.addr))
	p := fast
	p.Attempts = 4
	err := Do(context.Background(), p, func(ctx context.Context) error {
		_, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "rid-bounded"})
		return err
	})
	var e *Error
	if !errors.As(err, &e) || e.Outcome != RetryElsewhere || e.Attempts != 4 || status.Code(err) != codes.Unavailable {
		t.Fatalf("Do: %v, want RetryElsewhere after 4 attempts, Unavailable", err)
	}
	sameIDs(t, r.calls(), "rid-bounded", 4)
}

// The caller's context ends the retries: the error says so and keeps the
// last call's code. The context is cancelled by the server on its 3rd
// call, so nothing depends on timing.
func TestDoEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := serve(t, func(n int) error {
		if n == 3 {
			cancel()
		}
		return notLeader
	})
	cl := pb.NewCaseServiceClient(dial(t, r.addr))
	err := Do(ctx, fast, func(ctx context.Context) error {
		_, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "rid-ctx"})
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do: %v, want context.Canceled", err)
	}
	if n := len(r.calls()); n != 3 {
		t.Fatalf("%d calls, want 3 (none after the context ended)", n)
	}
}

// A disk-reserve refusal backs off and calls the same address again
// (honouring RetryInfo), and ClassifyAlso adds a code the caller knows is
// passing.
func TestDoDiskRefusalAndExtraCodes(t *testing.T) {
	r := serve(t, func(n int) error {
		switch n {
		case 1, 2:
			return diskLow()
		case 3:
			return status.Error(codes.Aborted, "a run is in progress")
		}
		return nil
	})
	cl := pb.NewCaseServiceClient(dial(t, r.addr))
	p := fast
	p.Classify = ClassifyAlso(RetryHere, codes.Aborted)
	err := Do(context.Background(), p, func(ctx context.Context) error {
		_, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "rid-disk"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sameIDs(t, r.calls(), "rid-disk", 4)
}

// Replicas follow the leader: followers answering "not the leader" are
// passed over at once, the leader is remembered, and the next call goes
// to it first.
func TestReplicasFollowTheLeader(t *testing.T) {
	f1 := serve(t, func(int) error { return notLeader })
	f2 := serve(t, func(int) error { return notLeader })
	leader := serve(t, func(int) error { return nil })
	rs := NewReplicas("d-1", []string{f1.addr, f2.addr, leader.addr}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer rs.Close()
	report := func(id string) error {
		req := &pb.ReportCaseRequest{RequestId: id} // set once, before the first attempt
		return rs.Call(context.Background(), fast, func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := pb.NewCaseServiceClient(c).ReportCase(ctx, req)
			return err
		})
	}
	if err := report("rid-lead-1"); err != nil {
		t.Fatal(err)
	}
	if rs.Current() != 2 {
		t.Fatalf("current replica %d, want 2 (the leader)", rs.Current())
	}
	if err := report("rid-lead-2"); err != nil {
		t.Fatal(err)
	}
	sameIDs(t, f1.calls(), "rid-lead-1", 1)
	sameIDs(t, f2.calls(), "rid-lead-1", 1)
	if got := leader.calls(); len(got) != 2 || got[0] != "rid-lead-1" || got[1] != "rid-lead-2" {
		t.Fatalf("leader saw %v, want one call of each request", got)
	}
}

// While no replica leads (an election), Call goes round the replicas and
// backs off between rounds until one answers: the same request id on every
// attempt, wherever it went.
func TestReplicasNoLeaderYet(t *testing.T) {
	var mu sync.Mutex
	total := 0
	elected := func(n int) error { // the 7th call overall finds a leader
		mu.Lock()
		defer mu.Unlock()
		total++
		if total < 7 {
			return notLeader
		}
		return nil
	}
	a, b := serve(t, elected), serve(t, elected)
	rs := NewReplicas("s-1", []string{a.addr, b.addr}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer rs.Close()
	req := &pb.ReportCaseRequest{RequestId: "rid-election"}
	err := rs.Call(context.Background(), fast, func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pb.NewCaseServiceClient(c).ReportCase(ctx, req)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	all := append(a.calls(), b.calls()...)
	sameIDs(t, all, "rid-election", 7)
	if d := len(a.calls()) - len(b.calls()); d < -1 || d > 1 {
		t.Fatalf("%d calls to a, %d to b: the rounds do not alternate", len(a.calls()), len(b.calls()))
	}
}

// A disk-reserve refusal is the leader's: Call backs off and asks the same
// replica again, Round ends at it; neither passes it to another replica.
func TestReplicasDiskRefusalStaysOnTheLeader(t *testing.T) {
	lead := serve(t, func(n int) error {
		if n <= 2 {
			return diskLow()
		}
		return nil
	})
	other := serve(t, func(int) error { return nil })
	rs := NewReplicas("c-1", []string{lead.addr, other.addr}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer rs.Close()
	call := func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pb.NewCaseServiceClient(c).ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "rid-disk-lead"})
		return err
	}
	err := rs.Round(context.Background(), fast, call)
	var e *Error
	if !errors.As(err, &e) || e.Outcome != DiskLow || e.Attempts != 1 || !diskspace.IsRefusal(err) || e.Addr != lead.addr {
		t.Fatalf("Round: %v, want the disk refusal of %s after 1 attempt", err, lead.addr)
	}
	if err := rs.Call(context.Background(), fast, call); err != nil {
		t.Fatal(err)
	}
	sameIDs(t, lead.calls(), "rid-disk-lead", 3)
	if n := len(other.calls()); n != 0 {
		t.Fatalf("the other replica got %d calls: a disk refusal was passed over", n)
	}
}

// Round tries each replica at most once and never waits; a final error
// ends it at once.
func TestReplicasRound(t *testing.T) {
	f := serve(t, func(int) error { return notLeader })
	bad := serve(t, func(int) error { return badInput })
	never := serve(t, func(int) error { return nil })
	rs := NewReplicas("d-2", []string{f.addr, bad.addr, never.addr}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer rs.Close()
	err := rs.Round(context.Background(), Policy{}, func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pb.NewCaseServiceClient(c).ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "rid-round"})
		return err
	})
	var e *Error
	if !errors.As(err, &e) || e.Outcome != Final || e.Attempts != 2 || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Round: %v, want Final after 2 attempts", err)
	}
	if len(f.calls()) != 1 || len(bad.calls()) != 1 || len(never.calls()) != 0 {
		t.Fatalf("calls %d, %d, %d; want 1, 1, 0", len(f.calls()), len(bad.calls()), len(never.calls()))
	}
	// Every replica a follower: one round, Len attempts, RetryElsewhere.
	rs2 := NewReplicas("d-3", []string{f.addr, f.addr}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer rs2.Close()
	err = rs2.Round(context.Background(), Policy{}, func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pb.NewCaseServiceClient(c).ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "rid-round-2"})
		return err
	})
	if !errors.As(err, &e) || e.Outcome != RetryElsewhere || e.Attempts != 2 {
		t.Fatalf("Round over followers: %v, want RetryElsewhere after 2", err)
	}
}

func TestClassify(t *testing.T) {
	refusal := diskspace.WithDetails(status.New(codes.Unavailable, "low"), &diskspace.LowError{Dir: "/d", Free: 1, Reserve: 2}).Err()
	for _, tc := range []struct {
		err  error
		want Outcome
	}{
		{nil, Done},
		{notLeader, RetryElsewhere},
		{status.Error(codes.DeadlineExceeded, "slow"), RetryElsewhere},
		{status.Error(codes.Canceled, "server went away"), RetryElsewhere},
		{context.DeadlineExceeded, RetryElsewhere},
		{status.Error(codes.ResourceExhausted, "slow watcher"), RetryHere},
		{refusal, DiskLow},
		{&diskspace.LowError{Dir: "/d"}, DiskLow},
		{badInput, Final},
		{status.Error(codes.FailedPrecondition, "forbidden"), Final},
		{status.Error(codes.Aborted, "version"), Final},
		{status.Error(codes.PermissionDenied, "no"), Final},
		{errors.New("plain"), Final},
		{&Error{Outcome: RetryElsewhere, Err: badInput}, Final}, // Classify reads the code; OutcomeOf the Error
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
	if got := OutcomeOf(&Error{Outcome: RetryElsewhere, Err: badInput}); got != RetryElsewhere {
		t.Errorf("OutcomeOf(*Error) = %s", got)
	}
	// The disk reserve's RetryInfo (10 s) is honoured over a shorter backoff.
	if got := Wait(refusal, 50*time.Millisecond); got != diskspace.RetryAfter {
		t.Errorf("Wait after the disk refusal: %v, want %v", got, diskspace.RetryAfter)
	}
	if got := Wait(notLeader, 50*time.Millisecond); got != 50*time.Millisecond {
		t.Errorf("Wait without RetryInfo: %v", got)
	}
}

// The delays grow from Initial by the multiplier, stay within the jitter
// and never pass Max; Reset starts again.
func TestBackoff(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.2}
	b := p.Backoff()
	want := 100 * time.Millisecond
	for i := 0; i < 12; i++ {
		d := b.Next()
		lo, hi := time.Duration(float64(want)*0.8), min(time.Duration(float64(want)*1.2)+1, time.Second)
		if d < lo || d > hi {
			t.Fatalf("delay %d: %v, want in [%v, %v]", i, d, lo, hi)
		}
		want = min(2*want, time.Second)
	}
	b.Reset()
	if d := b.Next(); d > 120*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
	z := Policy{}.Backoff()
	if d := z.Next(); d < 40*time.Millisecond || d > 60*time.Millisecond {
		t.Fatalf("zero policy's first delay %v, want about %v", d, DefaultInitial)
	}
}

// Reconnected has nothing to wait for before a connection is made, nor
// when every connection is ready (a refusal from a reachable leader must
// wait out its backoff, never end it at once); it waits for a replica
// that is down. (federation/relay's TestRelayResumesWhenTheNeighbourIsBack
// checks that it closes when that replica comes back.)
func TestReplicasReconnectedWaitsOnlyForAReplicaThatIsDown(t *testing.T) {
	up := serve(t, func(int) error { return nil })
	rs := NewReplicas("d-4", []string{up.addr}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer rs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if ch := rs.Reconnected(ctx); ch != nil {
		t.Fatal("a channel to wait on before any connection was made")
	}
	if err := rs.Call(ctx, fast, func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pb.NewCaseServiceClient(c).ReportCase(ctx, &pb.ReportCaseRequest{RequestId: "rid-rc-1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if ch := rs.Reconnected(ctx); ch != nil {
		t.Fatal("a channel to wait on with the only connection ready")
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := lis.Addr().String()
	lis.Close()
	rd := NewReplicas("d-5", []string{down}, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer rd.Close()
	if _, err := rd.Conn(0); err != nil {
		t.Fatal(err)
	}
	ch := rd.Reconnected(ctx)
	if ch == nil {
		t.Fatal("no channel with the only replica down")
	}
	select {
	case <-ch:
		t.Fatal("closed with the replica still down")
	case <-time.After(300 * time.Millisecond):
	}
}
