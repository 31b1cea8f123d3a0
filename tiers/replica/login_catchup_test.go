package replica_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// TestTokenOnAReplicaBehindItsLogin: a follower is stopped, the
// administrator logs in at the leader (a session the follower has never
// seen), and the follower starts again alone, so it cannot catch up. Shown
// the new token it answers Unavailable, gRPC and REST (503): try another
// replica. Never Unauthenticated, which would send a grid worker's phone
// or the console back to the login page for a good token. Once the others
// are back it catches up and takes the token.
func TestTokenOnAReplicaBehindItsLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: run without -short")
	}
	internal, authOn := authenticated(t)
	c := testcluster.New(t, 3, internal, authOn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := c.WaitLeader(readyWait)
	login := func() string {
		var tok string
		testcluster.WaitFor(t, readyWait, "the administrator's login", func() bool {
			resp, err := pb.NewAuthServiceClient(c.Conn(leader)).Login(ctx, &pb.LoginRequest{Username: "admin", Password: "rejoin-admin-password"})
			if err == nil {
				tok = resp.AccessToken
			}
			return err == nil
		})
		return tok
	}
	login()
	waitAllApplied(t, c)
	f := (leader + 1) % 3
	other := (leader + 2) % 3
	c.Stop(f)
	tok := login() // a session follower f has not applied
	c.Stop(leader)
	c.Stop(other)
	c.Start(f)

	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	whoami := func() error {
		cctx, cancel := context.WithTimeout(actx, 10*time.Second)
		defer cancel()
		_, err := pb.NewAuthServiceClient(c.Conn(f)).WhoAmI(cctx, &pb.WhoAmIRequest{})
		return err
	}
	if err := whoami(); status.Code(err) != codes.Unavailable {
		t.Fatalf("the token on a replica alone and behind its login: %v, want Unavailable (try another replica)", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.HTTPBase(f)+"/v1/cases", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("REST with the token on the replica behind: %d, want 503", resp.StatusCode)
	}

	c.Start(leader)
	c.Start(other)
	testcluster.WaitFor(t, readyWait, "the replica to catch up and take the token", func() bool {
		err := whoami()
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("the token while the replica catches up: %v, want success or Unavailable", err)
		}
		return err == nil
	})
}
