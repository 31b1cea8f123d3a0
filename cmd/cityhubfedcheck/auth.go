package main

// Credentials: every node of the federation authenticates its callers. The
// driver logs in as each node's first administrator (--admin-password-file:
// one file for every node, or a directory with a file per node name),
// makes the seats it plays at that node (a shift leader, a dispatcher, an
// inspector of --grid, and a handling unit's seat per --unit), logs each
// seat in, and sends every call with the seat its request names: the
// request's role (and, for a handling unit, its actor, the unit) chooses
// the credentials; a read sends the shift leader's.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/cmd/internal/authclient"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/client"
)

// seat is one of the accounts the driver plays at a node: a role and, for
// a handling unit, the unit.
type seat struct {
	role pb.Role
	unit string
}

// seatName is the account name of a seat: fed-lead, fed-disp, fed-insp,
// fed-<unit>.
func seatName(s seat) string {
	switch s.role {
	case pb.Role_ROLE_SHIFT_LEADER:
		return "fed-lead"
	case pb.Role_ROLE_DISPATCHER:
		return "fed-disp"
	case pb.Role_ROLE_INSPECTOR:
		return "fed-insp"
	}
	name := "fed-" + s.unit
	if len(name) > 32 {
		name = name[:32]
	}
	return name
}

// readSeat is the seat whose credentials go with calls that name no role
// (reads, cluster and link status).
var readSeat = seat{role: pb.Role_ROLE_SHIFT_LEADER}

// seatOf picks the seat a request is sent as.
func seatOf(req any) seat {
	switch r := req.(type) {
	case *pb.ReportCaseRequest:
		if r.Role != pb.Role_ROLE_UNSPECIFIED {
			return seat{role: r.Role}
		}
	case *pb.ActRequest:
		if r.Role == pb.Role_ROLE_HANDLING_UNIT {
			return seat{role: r.Role, unit: r.Actor}
		}
		if r.Role != pb.Role_ROLE_UNSPECIFIED {
			return seat{role: r.Role}
		}
	}
	return readSeat
}

// groupAuth holds a node's logins.
type groupAuth struct {
	conn     *grpc.ClientConn // every replica of the node, for logins and refreshes
	sessions map[seat]*authclient.Session
}

// transport is the client API's security: TLS checked against --ca, or
// plain text without it.
func transport(ca string) (credentials.TransportCredentials, error) {
	if ca == "" {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate in it", ca)
	}
	return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}), nil
}

// dialAuth opens the node's login connection: one channel over all its
// replicas, so a login or refresh finds a live one.
func dialAuth(g *group, tc credentials.TransportCredentials) (*grpc.ClientConn, error) {
	r := manual.NewBuilderWithScheme("fedcheck")
	var addrs []resolver.Address
	for _, a := range g.addrs {
		addrs = append(addrs, resolver.Address{Addr: a})
	}
	r.InitialState(resolver.State{Addresses: addrs})
	host := g.addrs[0]
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h // the replicas' certificates name their address
	}
	return grpc.NewClient(r.Scheme()+":///"+g.name, grpc.WithResolvers(r), grpc.WithTransportCredentials(tc),
		grpc.WithAuthority(host), grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
}

// intercept sends each call of node g with the credentials of the seat its
// request names.
func (g *group) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if g.auth == nil {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	s := seatOf(req)
	sess := g.auth.sessions[s]
	if sess == nil {
		return status.Errorf(codes.FailedPrecondition, "cityhubfedcheck: no seat %s at %s (role %s, unit %q)", seatName(s), g.name, s.role, s.unit)
	}
	return invoker(ctx, method, req, reply, cc, append(opts, grpc.PerRPCCredentials(sess))...)
}

// adminPassword reads node's administrator password: the file, or the
// file named after the node in the directory.
func adminPassword(path, node string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--admin-password-file: %w", err)
	}
	if fi.IsDir() {
		path = filepath.Join(path, node)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--admin-password-file: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("--admin-password-file: %s is empty", path)
	}
	return pw, nil
}

// seats lists what the driver plays at node g.
func (d *driver) seats(g *group) []seat {
	return []seat{
		{role: pb.Role_ROLE_SHIFT_LEADER},
		{role: pb.Role_ROLE_DISPATCHER},
		{role: pb.Role_ROLE_INSPECTOR},
		{role: pb.Role_ROLE_HANDLING_UNIT, unit: d.o.units[g.name]},
	}
}

// setupAuth logs in as every node's administrator, makes the driver's
// seats (an existing seat gets this run's password, role, unit and grids)
// and logs each seat in. Nothing happens without --admin-password-file.
func (d *driver) setupAuth(ctx context.Context) error {
	if d.o.adminPW == "" {
		return nil
	}
	buf := make([]byte, 12)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	seatPW := hex.EncodeToString(buf)
	for _, g := range d.o.nodes {
		pw, err := adminPassword(d.o.adminPW, g.name)
		if err != nil {
			return err
		}
		var admin *authclient.Session
		if err := retry(ctx, func(ctx context.Context) error {
			admin, err = authclient.Login(ctx, g.auth.conn, d.o.adminUser, pw)
			return err
		}); err != nil {
			return fmt.Errorf("%s: log in as %s: %w", g.name, d.o.adminUser, err)
		}
		ac := pb.NewAuthServiceClient(g.auth.conn)
		as := grpc.PerRPCCredentials(admin)
		for _, s := range d.seats(g) {
			name := seatName(s)
			req := &pb.CreateAccountRequest{Name: name, Role: s.role, Unit: s.unit, Password: seatPW,
				DisplayName: "cityhubfedcheck " + strings.ToLower(strings.TrimPrefix(s.role.String(), "ROLE_")),
				RequestId:   fmt.Sprintf("%s-seat-%s-%s", d.o.runID, g.name, name)}
			if s.role == pb.Role_ROLE_INSPECTOR {
				req.Grids = []string{d.o.grid}
			}
			err := retry(ctx, func(ctx context.Context) error {
				_, err := ac.CreateAccount(ctx, req, as)
				if status.Code(err) == codes.AlreadyExists {
					// A seat of an earlier run: this run's password and fields.
					_, err = ac.UpdateAccount(ctx, &pb.UpdateAccountRequest{Name: name, Password: seatPW, Role: s.role, Unit: s.unit,
						SetGrids: true, Grids: req.Grids, Enable: true, RequestId: req.RequestId + "-update"}, as)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: seat %s: %w", g.name, name, err)
			}
			var sess *authclient.Session
			if err := retry(ctx, func(ctx context.Context) error {
				var err error
				sess, err = authclient.Login(ctx, g.auth.conn, name, seatPW)
				return err
			}); err != nil {
				return fmt.Errorf("%s: log in as %s: %w", g.name, name, err)
			}
			g.auth.sessions[s] = sess
		}
		d.log.Info("seats ready", "node", g.name, "seats", len(g.auth.sessions))
	}
	return nil
}

// retry calls fn (tiers/client.Do, each call bounded by 5 s) until it
// succeeds, ctx ends, or it fails for good; Unauthenticated (while a new
// node makes its first administrator) and Aborted are retried too.
func retry(ctx context.Context, fn func(context.Context) error) error {
	return client.Do(ctx, client.Policy{Initial: 100 * time.Millisecond, Max: time.Second, Timeout: 5 * time.Second,
		Classify: client.ClassifyAlso(client.RetryHere, codes.Unauthenticated, codes.Aborted)}, fn)
}
