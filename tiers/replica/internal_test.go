package replica_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/federation/certs"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/node"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
	"github.com/cityhub/cityhub/tiers/store"
)

// group is the name the test cluster's replicas share on the internal
// plane; "d-320506" is another node of the same CA (a neighbour, another
// group).
const (
	group    = "g-320582"
	outsider = "d-320506"
)

// TestInternalPlane runs a 3-replica group whose internal plane (write
// forwarding and raft) is mutual TLS with the group's certificate, and
// checks who can reach what.
func TestInternalPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	opt, dir := testcluster.InternalTLS(t, group, outsider)
	c := testcluster.New(t, 3, opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Every member registered (through ForwardService.Register on the
	// leader, for the followers) with its internal address.
	testcluster.WaitFor(t, 20*time.Second, "every member registered with its internal address", func() bool {
		l := c.Leader()
		if l < 0 {
			return false
		}
		nodes, err := c.Members[l].R.Node.Store().Nodes()
		if err != nil || len(nodes) != 3 {
			return false
		}
		for _, n := range nodes {
			if n.InternalAddr == "" {
				return false
			}
		}
		return true
	})
	groupFiles := certs.NodeFiles(dir, group)

	t.Run("RaftReplicatesOverMTLS", func(t *testing.T) {
		l := c.Leader()
		resp, err := c.Cases(l).ReportCase(ctx, report("mtls-on-leader", "written on the leader"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.Members {
			testcluster.WaitFor(t, 10*time.Second, "the case on "+c.Members[i].ID, func() bool {
				got, err := c.Members[i].R.Node.Store().GetCase(resp.Case.Id)
				return err == nil && got.Version == resp.Case.Version
			})
		}
		// And through a follower, forwarded over the internal listener.
		f := (l + 1) % 3
		if _, err := c.Cases(f).ReportCase(ctx, report("mtls-via-follower", "forwarded by a follower")); err != nil {
			t.Fatalf("write via follower: %v", err)
		}
	})

	t.Run("RaftRefusesOutsiders", func(t *testing.T) {
		target := raft.ServerAddress(c.Members[c.Leader()].Cfg.Raft.Addr)
		vote := func(t *testing.T, sl raft.StreamLayer) error {
			tr := raft.NewNetworkTransport(sl, 1, 5*time.Second, io.Discard)
			defer tr.Close()
			var resp raft.RequestVoteResponse
			return tr.RequestVote("intruder", target, &raft.RequestVoteRequest{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")},
				Term:      0,
			}, &resp)
		}
		// A replica of the group is answered (the vote is refused, but the
		// call goes through): the control that shows the refusals below
		// are the certificate's doing.
		if err := vote(t, dialLayer(t, clientTLS(t, groupFiles, group))); err != nil {
			t.Fatalf("raft RPC with the group's certificate: %v", err)
		}
		other := certs.NodeFiles(dir, outsider)
		if err := vote(t, dialLayer(t, clientTLS(t, other, group))); err == nil {
			t.Error("raft RPC with another node's certificate of the same CA was answered")
		}
		noCert := clientTLS(t, groupFiles, group)
		noCert.Certificates = nil
		if err := vote(t, dialLayer(t, noCert)); err == nil {
			t.Error("raft RPC without a client certificate was answered")
		}
		if err := vote(t, dialLayer(t, nil)); err == nil {
			t.Error("plain-TCP raft RPC was answered")
		}
	})

	t.Run("ForwardServiceNotPublic", func(t *testing.T) {
		cmd := &pb.Command{RequestId: "public-trim", Body: &pb.Command_TrimOutbox{TrimOutbox: &pb.TrimOutbox{Link: "x", Upto: 1 << 40}}}
		for i, m := range c.Members {
			_, err := pb.NewForwardServiceClient(c.Conn(i)).Propose(ctx, &pb.ProposeRequest{Command: cmd})
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("%s: ForwardService.Propose on the public gRPC listener: %v, want Unimplemented", m.ID, err)
			}
			_, err = pb.NewForwardServiceClient(c.Conn(i)).Register(ctx, &pb.RegisterRequest{Node: &pb.RegisterNode{NodeId: "evil", RaftAddr: "10.6.6.6:7000"}})
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("%s: ForwardService.Register on the public gRPC listener: %v, want Unimplemented", m.ID, err)
			}
			for _, path := range []string{"/cityhub.v1.ForwardService/Propose", "/v1/forward", "/v1/propose", "/v1/commands", "/v1/cluster/propose"} {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.HTTPBase(i)+path, strings.NewReader(`{"command":{"request_id":"rest-trim","trim_outbox":{"link":"x","upto":"1099511627776"}}}`))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
					t.Errorf("%s: POST %s on the REST gateway: %d, want 404", m.ID, path, resp.StatusCode)
				}
			}
			// The public listener speaks plain gRPC to a client; the
			// internal listener does not.
			if err := callForward(t, m.Cfg.Internal.Addr, insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
				t.Errorf("%s: plain-text call to the internal listener: %v, want Unavailable", m.ID, err)
			}
		}
	})

	t.Run("InternalListenerRefusesNonReplicas", func(t *testing.T) {
		addr := c.Members[c.Leader()].Cfg.Internal.Addr
		// Another CA, even with the group's name.
		otherDir := t.TempDir()
		if err := certs.GenerateDev(otherDir, []string{group}, certs.DevOptions{}); err != nil {
			t.Fatal(err)
		}
		forged := certs.NodeFiles(otherDir, group)
		forged.CA = groupFiles.CA // the client trusts the real server
		noCert := clientTLS(t, groupFiles, group)
		noCert.Certificates = nil
		for name, cfg := range map[string]*tls.Config{
			"no client certificate":                   noCert,
			"certificate of another CA":               clientTLS(t, forged, group),
			"same CA, another node's CommonName":      clientTLS(t, certs.NodeFiles(dir, outsider), group),
			"same CA, another name, pinned otherwise": clientTLS(t, certs.NodeFiles(dir, outsider), outsider),
		} {
			err := callForward(t, addr, credentials.NewTLS(cfg))
			switch status.Code(err) {
			case codes.Unavailable, codes.Unauthenticated, codes.PermissionDenied:
				t.Logf("%s: refused: %v", name, err)
			default:
				t.Errorf("%s: %v, want the handshake refused (Unavailable) or Unauthenticated/PermissionDenied", name, err)
			}
		}
		// A replica of the group gets through (to the handler: if an
		// election under load moved the leader, it says so).
		if err := callForward(t, addr, credentials.NewTLS(clientTLS(t, groupFiles, group))); err != nil && !strings.Contains(err.Error(), "not the raft leader") {
			t.Fatalf("a replica of the group: %v", err)
		}
	})

	t.Run("RawCommandsRefused", func(t *testing.T) {
		l := c.Leader()
		leader := c.Members[l].R.Node
		conn := dialInternal(t, c.Members[l].Cfg.Internal.Addr, credentials.NewTLS(clientTLS(t, groupFiles, group)))
		fwd := pb.NewForwardServiceClient(conn)
		// Every replica registered (the writes a group makes by itself at
		// start), so nothing else moves the log during the checks.
		testcluster.WaitFor(t, 60*time.Second, "every replica registered", func() bool {
			nodes, err := leader.Store().Nodes()
			if err != nil || len(nodes) < len(c.Members) {
				return false
			}
			for _, n := range nodes {
				if n.InternalAddr == "" {
					return false
				}
			}
			return leader.AppliedIndex() >= leader.Raft().LastIndex()
		})
		before, term := leader.Raft().LastIndex(), leader.Raft().CurrentTerm()

		good := report("raw-forged", "a forged report")
		forgedReport := &pb.Command{RequestId: "raw-forged", Body: &pb.Command_Report{Report: &pb.ReportCase{
			Case: &pb.Case{Id: "320582-20200101-000001", State: pb.State_STATE_CLOSED, Source: good.Source, Kind: good.Kind,
				MajorCode: good.MajorCode, MinorCode: good.MinorCode, GridCode: good.GridCode, Description: good.Description, Urgency: pb.Urgency_URGENCY_ORDINARY},
			Actor: good.Actor, Role: good.Role,
		}}}
		for _, tc := range []struct {
			name string
			cmd  *pb.Command
			want codes.Code
		}{
			{"TrimOutbox", &pb.Command{RequestId: "raw-trim", Body: &pb.Command_TrimOutbox{TrimOutbox: &pb.TrimOutbox{Link: "city", Upto: 1 << 40}}}, codes.PermissionDenied},
			{"SetTopology", &pb.Command{RequestId: "raw-topo", Body: &pb.Command_SetTopology{SetTopology: &pb.SetTopology{}}}, codes.PermissionDenied},
			{"RepairCases", &pb.Command{RequestId: "raw-repair", Body: &pb.Command_Repair{Repair: &pb.RepairCases{From: "city", Cases: []*pb.Case{{Id: "320582-20200101-000001"}}}}}, codes.PermissionDenied},
			{"DeliverEntries", &pb.Command{RequestId: "raw-deliver", Body: &pb.Command_Deliver{Deliver: &pb.DeliverEntries{From: "city"}}}, codes.PermissionDenied},
			{"MarkOverdueBatch", &pb.Command{RequestId: "raw-overdue", Body: &pb.Command_MarkOverdueBatch{MarkOverdueBatch: &pb.MarkOverdueBatch{Marks: []*pb.MarkOverdue{{CaseId: "320582-20200101-000001"}}}}}, codes.PermissionDenied},
			{"ReconcileCases", &pb.Command{RequestId: "raw-reconcile", Body: &pb.Command_Reconcile{Reconcile: &pb.ReconcileCases{}}}, codes.PermissionDenied},
			{"RegisterNode", &pb.Command{RequestId: "raw-register", Body: &pb.Command_RegisterNode{RegisterNode: &pb.RegisterNode{NodeId: "n1", RaftAddr: "10.6.6.6:7000", InternalAddr: "10.6.6.6:7400"}}}, codes.PermissionDenied},
			{"report carrying server fields", forgedReport, codes.InvalidArgument},
			{"report outside validation", &pb.Command{RequestId: "raw-bad-report", Body: &pb.Command_Report{Report: &pb.ReportCase{Case: &pb.Case{Description: "no class"}, Actor: "a", Role: pb.Role_ROLE_INSPECTOR}}}, codes.InvalidArgument},
			{"report with a stamped owner", &pb.Command{RequestId: "raw-owned", Body: &pb.Command_Report{Report: &pb.ReportCase{Case: forgedReport.GetReport().Case, Actor: "a", Role: pb.Role_ROLE_INSPECTOR, Ownership: &pb.Ownership{Unit: "elsewhere"}}}}, codes.InvalidArgument},
			{"action with leader stamps", &pb.Command{RequestId: "raw-act", Body: &pb.Command_Act{Act: &pb.CaseAction{CaseId: "320582-20200101-000001", Action: pb.Action_ACTION_CLOSE, Actor: "a", Role: pb.Role_ROLE_SHIFT_LEADER, StageDeadlineUnixMs: 1}}}, codes.InvalidArgument},
			{"action the API refuses", &pb.Command{RequestId: "raw-act-2", Body: &pb.Command_Act{Act: &pb.CaseAction{CaseId: "320582-20200101-000001", Action: pb.Action_ACTION_DISPATCH, Actor: "a", Role: pb.Role_ROLE_DISPATCHER}}}, codes.InvalidArgument},
			{"stamped command", &pb.Command{RequestId: "raw-stamped", StampedUnixMs: 1, StampedBy: "n1", Body: &pb.Command_Act{Act: &pb.CaseAction{CaseId: "320582-20200101-000001", Action: pb.Action_ACTION_CLOSE, Actor: "a", Role: pb.Role_ROLE_SHIFT_LEADER}}}, codes.InvalidArgument},
			{"evidence purge", &pb.Command{RequestId: "raw-purge", Body: &pb.Command_AttachEvidence{AttachEvidence: &pb.AttachEvidence{Op: &pb.AttachEvidence_Purge{Purge: &pb.EvidencePurge{Sha256: strings.Repeat("a", 64)}}}}}, codes.PermissionDenied},
			{"import of a closed case with an id", &pb.Command{RequestId: "raw-import", Body: &pb.Command_ImportCases{ImportCases: &pb.ImportCases{Cases: []*pb.ImportedCase{{IdDate: "20200101", Case: forgedReport.GetReport().Case}}}}}, codes.InvalidArgument},
		} {
			// Apply (the state machine's result) and Propose (a case, for
			// a follower of an older release) check alike.
			_, err := fwd.Propose(ctx, &pb.ProposeRequest{Command: tc.cmd})
			if status.Code(err) != tc.want {
				t.Errorf("%s: Propose: %v, want %v", tc.name, err, tc.want)
			}
			_, err = fwd.Apply(ctx, &pb.ProposeRequest{Command: tc.cmd})
			if status.Code(err) != tc.want {
				t.Errorf("%s: Apply: %v, want %v", tc.name, err, tc.want)
			}
		}
		// A registration of an id or address outside the raft configuration.
		for _, reg := range []*pb.RegisterNode{
			{NodeId: "evil", RaftAddr: "10.6.6.6:7000", InternalAddr: "10.6.6.6:7400"},
			{NodeId: c.Members[(l+1)%3].ID, RaftAddr: "10.6.6.6:7000", InternalAddr: "10.6.6.6:7400"},
		} {
			if _, err := fwd.Register(ctx, &pb.RegisterRequest{Node: reg}); status.Code(err) != codes.PermissionDenied {
				t.Errorf("register %s at %s: %v, want PermissionDenied", reg.NodeId, reg.RaftAddr, err)
			}
		}
		// node.Propose, a client's write path, refuses a leader's own
		// command on the leader and on a follower (before forwarding).
		for _, m := range c.Members {
			_, err := m.R.Node.Propose(ctx, &pb.Command{RequestId: "raw-propose-trim", Body: &pb.Command_TrimOutbox{TrimOutbox: &pb.TrimOutbox{Link: "city", Upto: 1 << 40}}})
			if !errors.Is(err, node.ErrNotClientCommand) {
				t.Errorf("%s: Propose(TrimOutbox): %v, want ErrNotClientCommand", m.ID, err)
			}
		}
		// Nothing reached the log: no replica recorded any of those request
		// ids, and (unless an election under load added its own entry) the
		// leader's last index did not move.
		if after := leader.Raft().LastIndex(); after != before && leader.Raft().CurrentTerm() == term {
			t.Errorf("raft last index moved from %d to %d: a refused command reached the log", before, after)
		}
		for i, m := range c.Members {
			err := c.Members[i].R.Node.Store().View(func(tx *store.Tx) error {
				for _, id := range []string{"raw-trim", "raw-topo", "raw-repair", "raw-deliver", "raw-overdue", "raw-reconcile", "raw-register", "raw-forged", "raw-bad-report", "raw-owned", "raw-act", "raw-act-2", "raw-stamped", "raw-purge", "raw-import", "raw-propose-trim"} {
					if _, err := tx.GetRequest(id); err == nil {
						t.Errorf("%s applied refused request %s", m.ID, id)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// A replica's connection proposes what a client request causes
		// (at the current leader: elections happen under load).
		testcluster.WaitFor(t, 30*time.Second, "a valid forwarded report to commit", func() bool {
			l := c.Leader()
			if l < 0 {
				return false
			}
			conn := dialInternal(t, c.Members[l].Cfg.Internal.Addr, credentials.NewTLS(clientTLS(t, groupFiles, group)))
			resp, err := pb.NewForwardServiceClient(conn).Apply(ctx, &pb.ProposeRequest{Command: reportCommand(good)})
			if err != nil && status.Code(err) != codes.Unavailable {
				t.Fatalf("a valid forwarded report: %v", err)
			}
			if err == nil && resp.GetResult().GetCase().GetId() == "" {
				t.Fatalf("a forwarded report's result carries no case: %v", resp)
			}
			return err == nil
		})
	})
}

// reportCommand is the command ReportCase builds from a valid request.
func reportCommand(r *pb.ReportCaseRequest) *pb.Command {
	return &pb.Command{RequestId: r.RequestId, Body: &pb.Command_Report{Report: &pb.ReportCase{
		Case: &pb.Case{Source: r.Source, Kind: r.Kind, MajorCode: r.MajorCode, MinorCode: r.MinorCode,
			GridCode: r.GridCode, Description: r.Description, Urgency: pb.Urgency_URGENCY_ORDINARY},
		Actor: r.Actor, Role: r.Role,
	}}}
}

// callForward makes one ForwardService call (a valid report) over a fresh
// connection to addr.
func callForward(t *testing.T, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn := dialInternal(t, addr, creds)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := report("probe-"+strings.ReplaceAll(addr, ":", "-")+"-"+time.Now().Format("150405.000000000"), "probe")
	_, err := pb.NewForwardServiceClient(conn).Propose(ctx, &pb.ProposeRequest{Command: reportCommand(r)})
	return err
}

func dialInternal(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// clientTLS is a client configuration from f, pinned to serverName.
func clientTLS(t *testing.T, f certs.Files, serverName string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13}
}

// dialLayer is a raft.StreamLayer that only dials: over TLS with cfg, or
// plain TCP when cfg is nil.
func dialLayer(t *testing.T, cfg *tls.Config) raft.StreamLayer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &testLayer{Listener: l, cfg: cfg}
}

type testLayer struct {
	net.Listener
	cfg *tls.Config
}

func (l *testLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if l.cfg == nil {
		return d.Dial("tcp", string(addr))
	}
	return tls.DialWithDialer(d, "tcp", string(addr), l.cfg)
}
