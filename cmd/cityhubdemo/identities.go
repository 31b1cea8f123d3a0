package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"golang.org/x/crypto/bcrypt"

	"github.com/cityhub/cityhub/cmd/internal/authclient"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/auth"
	"github.com/cityhub/cityhub/tiers/fsm"
	"github.com/cityhub/cityhub/tiers/replica"
)

// The demo runs with authentication on, as a real federation does. Every
// node's first administrator comes from auth.admin_password_file; the demo
// then seeds each node's staff seats, unit seats and integrator keys, and
// the generator acts through them: each call carries the credentials of the
// account whose job the step is (identities.unary).
//
// The seats are seeded through each node's Raft log (an identity change, as
// the node makes its first administrator), not through AuthService, and
// their password hash is bcrypt at its minimum cost, made once: every login
// checks it. At the API's cost (10) a hash or check takes ~50 ms on an idle
// core and 2 s under the race detector (measured), so ~130 accounts made
// through the API plus their logins cost minutes of CPU in the demo's tests
// and ~40 s at start on a busy 2-core machine. A low cost loses nothing
// here: the password is 96 random bits, beyond guessing at any cost.
//
// The password: one random password per data directory, made on the first
// start and kept in <data>/auth/password (mode 0600), serves every demo
// account, the administrators included (the nodes' auth.admin_password_file).
// It is printed at start. Not a fixed, documented password: the demo's API
// listens on loopback, but any local user of a shared machine can reach
// loopback, and a password printed in the README would be everyone's.

// adminUser is the first administrator of every node (auth.admin_user).
const adminUser = "admin"

// seat is one of the staff accounts every node gets.
type seat struct {
	name    string
	role    pb.Role
	display string // the role's name; the node's name is appended
}

// staff are the people of every node's platform. The inspector patrols the
// node's whole jurisdiction.
var staff = []seat{
	{"clerk", pb.Role_ROLE_INTAKE_CLERK, "受理员"},
	{"lead", pb.Role_ROLE_SHIFT_LEADER, "值班长"},
	{"disp", pb.Role_ROLE_DISPATCHER, "派遣员"},
	{"insp", pb.Role_ROLE_INSPECTOR, "监督员"},
	{"super", pb.Role_ROLE_SUPERVISOR, "督办员"},
	{"eval", pb.Role_ROLE_EVALUATOR, "考评员"},
}

// integrator is an API key the demo makes: at every node the citizens'
// app and the camera analytics report through one; the city's 12345
// hotline platform too.
type integrator struct {
	purpose  string // the key's name in keys.json
	name     string
	role     pb.Role
	source   pb.Source
	cityOnly bool
}

var integrators = []integrator{
	{"hotline-12345", "12345 热线平台", pb.Role_ROLE_INTAKE_CLERK, pb.Source_SOURCE_HOTLINE_12345, true},
	{"app", "市民通 app", pb.Role_ROLE_CITIZEN, pb.Source_SOURCE_APP, false},
	{"camera", "视频智能分析 camera", pb.Role_ROLE_SYSTEM, pb.Source_SOURCE_CAMERA, false},
}

var accountNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// unitAccount is the name of the account of a unit's seat: the unit id
// when it makes an account name that no staff account has, else "u-" and
// the id made one.
func unitAccount(unit string) string {
	reserved := unit == adminUser || strings.HasPrefix(unit, "u-")
	for _, s := range staff {
		reserved = reserved || s.name == unit
	}
	if accountNameRe.MatchString(unit) && !reserved {
		return unit
	}
	name := "u-" + strings.Trim(nonName.ReplaceAllString(strings.ToLower(unit), "-"), "-")
	return name[:min(len(name), 32)]
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// authDir holds the password and the keys.
func authDir(dataDir string) string { return filepath.Join(dataDir, "auth") }

func passwordFile(dataDir string) string { return filepath.Join(authDir(dataDir), "password") }

// ensurePassword makes the demo's password once per data directory.
func ensurePassword(dataDir string) (string, error) {
	path := passwordFile(dataDir)
	b, err := os.ReadFile(path)
	if err == nil {
		if pw := strings.TrimSpace(string(b)); len(pw) >= 10 {
			return pw, nil
		}
		return "", fmt.Errorf("%s: want a password of at least 10 characters", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(authDir(dataDir), 0o700); err != nil {
		return "", err
	}
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	pw := "demo-" + base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", err
	}
	return pw, nil
}

// nodeIDs are one node's credentials.
type nodeIDs struct {
	name       string
	tier       topology.Tier
	gridPrefix string
	units      []topology.Unit
	cc         *grpc.ClientConn // logins and identity calls go through it
	leader     func() *replica.Replica

	mu       sync.Mutex
	sessions map[string]*authclient.Session // by account name
	units2   map[string]*unitSeat           // by unit id
	keys     map[string]string              // by integrator purpose
}

type unitSeat struct {
	mu   sync.Mutex
	sess *authclient.Session
}

// identities are the credentials of every node, and the keys file.
type identities struct {
	password string
	hash     []byte // of password, shared by the seats
	keysPath string
	nodes    map[string]*nodeIDs

	mu    sync.Mutex
	saved map[string]map[string]string // keys.json: node → purpose → key

	created, existed, keysMade atomic.Int64
}

func newIdentities(dataDir, password string) (*identities, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	ids := &identities{password: password, hash: hash, keysPath: filepath.Join(authDir(dataDir), "keys.json"), nodes: map[string]*nodeIDs{},
		saved: map[string]map[string]string{}}
	b, err := os.ReadFile(ids.keysPath)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &ids.saved); err != nil {
			return nil, fmt.Errorf("%s: %w (remove it: the demo makes new keys)", ids.keysPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return ids, nil
}

// addNode registers a node (cc is a connection to one of its replicas).
func (ids *identities) addNode(n topology.Node, gridPrefix string, cc *grpc.ClientConn, leader func() *replica.Replica) {
	ids.nodes[n.Name] = &nodeIDs{name: n.Name, tier: n.Tier, gridPrefix: gridPrefix, units: n.Units, cc: cc, leader: leader,
		sessions: map[string]*authclient.Session{}, units2: map[string]*unitSeat{}, keys: map[string]string{}}
}

// session returns the (lazily logged in) session of account name at n.
func (ids *identities) session(n *nodeIDs, name string) *authclient.Session {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sessions[name]
	if s == nil {
		s = authclient.Lazy(n.cc, name, ids.password)
		n.sessions[name] = s
	}
	return s
}

// provision seats every node's staff and units and makes its keys, a few
// nodes at a time. Accounts and keys kept from an earlier run on the same
// data are reused.
func (ids *identities) provision(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	names := make([]string, 0, len(ids.nodes))
	for name := range ids.nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	sem := make(chan struct{}, 4)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := ids.provisionNode(ctx, ids.nodes[name]); err != nil {
				errs[i] = fmt.Errorf("identities of %s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ids.saveKeys()
}

func (ids *identities) provisionNode(ctx context.Context, n *nodeIDs) error {
	for _, s := range staff {
		var grids []string
		if s.role == pb.Role_ROLE_INSPECTOR {
			grids = []string{n.gridPrefix}
		}
		if err := ids.createAccount(ctx, n, s.name, s.display+" "+n.name, s.role, "", grids); err != nil {
			return err
		}
	}
	for _, u := range n.units {
		if _, err := ids.unitSession(ctx, n, u.ID, u.Name); err != nil {
			return err
		}
	}
	if err := ids.ensureKeys(ctx, n); err != nil {
		return err
	}
	// The node's leader makes the first administrator from the password
	// file shortly after it is elected (a bcrypt hash at the API's cost):
	// the backlog's import and reconciliation are the administrator's.
	for {
		if _, err := n.leader().Node.Store().GetAccount(adminUser); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// propose applies an identity change at node n's leader.
func (ids *identities) propose(ctx context.Context, n *nodeIDs, what string, a *pb.AuthChange) error {
	a.By, a.CreateOnly = "cityhubdemo", true
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := n.leader().Node.Propose(cctx, &pb.Command{RequestId: "demo-identity/" + what + "/" + randomID(), Body: &pb.Command_Auth{Auth: a}})
	return err
}

// createAccount seats an account; one that exists already is fine.
func (ids *identities) createAccount(ctx context.Context, n *nodeIDs, name, display string, role pb.Role, unit string, grids []string) error {
	if _, err := n.leader().Node.Store().GetAccount(name); err == nil {
		ids.existed.Add(1)
		return nil
	}
	err := ids.propose(ctx, n, "account/"+name, &pb.AuthChange{Op: &pb.AuthChange_PutAccount{PutAccount: &pb.Account{
		Name: name, DisplayName: display, Role: role, Unit: unit, Grids: grids, PasswordHash: ids.hash,
	}}})
	switch {
	case err == nil:
		ids.created.Add(1)
		return nil
	case errors.Is(err, fsm.ErrIdentityExists) || status.Code(err) == codes.AlreadyExists:
		ids.existed.Add(1)
		return nil
	}
	return fmt.Errorf("account %s: %w", name, err)
}

// unitSession returns the session of the seat of unit at n, creating its
// account on first use: the node's units at start, and a unit outside the
// federation (非联网单位, e.g. the traffic police) or of an old system's
// backlog when a case dispatched to it is worked.
func (ids *identities) unitSession(ctx context.Context, n *nodeIDs, unit, display string) (*authclient.Session, error) {
	n.mu.Lock()
	us := n.units2[unit]
	if us == nil {
		us = &unitSeat{}
		n.units2[unit] = us
	}
	n.mu.Unlock()
	us.mu.Lock()
	defer us.mu.Unlock()
	if us.sess != nil {
		return us.sess, nil
	}
	if display == "" {
		display = unit
	}
	name := unitAccount(unit)
	if err := ids.createAccount(ctx, n, name, display, pb.Role_ROLE_HANDLING_UNIT, unit, nil); err != nil {
		return nil, err
	}
	us.sess = ids.session(n, name)
	return us.sess, nil
}

// ensureKeys makes the node's integrator keys, keeping those from an
// earlier run that the node still honours.
func (ids *identities) ensureKeys(ctx context.Context, n *nodeIDs) error {
	for _, in := range integrators {
		if in.cityOnly && n.tier != topology.City {
			continue
		}
		ids.mu.Lock()
		key := ids.saved[n.name][in.purpose]
		ids.mu.Unlock()
		live := false
		if id, _, ok := auth.ParseAPIKey(key); ok {
			k, err := n.leader().Node.Store().GetAPIKey(id)
			live = err == nil && k.RevokedUnixMs == 0
		}
		if !live {
			id, secret, hash := auth.NewAPIKey()
			if err := ids.propose(ctx, n, "key/"+in.purpose, &pb.AuthChange{Op: &pb.AuthChange_PutKey{PutKey: &pb.APIKey{
				Id: id, Name: in.name, SecretHash: hash, Role: in.role, Sources: []pb.Source{in.source},
			}}}); err != nil {
				return fmt.Errorf("key %s: %w", in.purpose, err)
			}
			key = secret
			ids.keysMade.Add(1)
			ids.mu.Lock()
			if ids.saved[n.name] == nil {
				ids.saved[n.name] = map[string]string{}
			}
			ids.saved[n.name][in.purpose] = key
			ids.mu.Unlock()
		}
		n.mu.Lock()
		n.keys[in.purpose] = key
		n.mu.Unlock()
	}
	return nil
}

func (ids *identities) saveKeys() error {
	ids.mu.Lock()
	b, err := json.MarshalIndent(ids.saved, "", "  ")
	ids.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(ids.keysPath), 0o700); err != nil {
		return err
	}
	return os.WriteFile(ids.keysPath, append(b, '\n'), 0o600)
}

// key returns node's integrator key for purpose ("" when it has none).
func (ids *identities) key(node, purpose string) string {
	n := ids.nodes[node]
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.keys[purpose]
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// unary is the client interceptor of the connections to node's replicas:
// it sends each call with the credentials of whoever the call is from.
func (ids *identities) unary(node string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == pb.AuthService_Login_FullMethodName || method == pb.AuthService_Refresh_FullMethodName {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		cred, err := ids.credentials(ctx, node, method, req)
		if err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, append(opts, grpc.PerRPCCredentials(cred))...)
	}
}

// credentials picks the account or key a call is made as:
//
//   - a report: by its role, the node's inspector or intake clerk, or for
//     the citizens' app, cameras and (at the city) the 12345 hotline the
//     integrator's key;
//   - an action: by its role, the node's shift leader, dispatcher,
//     inspector or supervisor, or for a handling unit the seat of the unit
//     that acts (the request's actor, which is the case's owner unit);
//   - other case reads: the shift leader;
//   - everything else (identities, import, reconciliation): the node's
//     administrator.
func (ids *identities) credentials(ctx context.Context, node, method string, req any) (credentials.PerRPCCredentials, error) {
	n := ids.nodes[node]
	if n == nil {
		return nil, status.Errorf(codes.Internal, "no credentials for node %s", node)
	}
	byRole := func(r pb.Role) string {
		switch r {
		case pb.Role_ROLE_INSPECTOR:
			return "insp"
		case pb.Role_ROLE_INTAKE_CLERK:
			return "clerk"
		case pb.Role_ROLE_DISPATCHER:
			return "disp"
		case pb.Role_ROLE_SUPERVISOR:
			return "super"
		case pb.Role_ROLE_EVALUATOR:
			return "eval"
		}
		return "lead"
	}
	keyOr := func(purpose, account string) credentials.PerRPCCredentials {
		if k := ids.key(node, purpose); k != "" {
			return authclient.Bearer(k)
		}
		return ids.session(n, account)
	}
	switch r := req.(type) {
	case *pb.ReportCaseRequest:
		switch {
		case r.Role == pb.Role_ROLE_CITIZEN:
			return keyOr("app", "clerk"), nil
		case r.Role == pb.Role_ROLE_SYSTEM:
			return keyOr("camera", "clerk"), nil
		case r.Role == pb.Role_ROLE_INTAKE_CLERK && r.Source == pb.Source_SOURCE_HOTLINE_12345:
			return keyOr("hotline-12345", "clerk"), nil
		}
		return ids.session(n, byRole(r.Role)), nil
	case *pb.ActRequest:
		if r.Role == pb.Role_ROLE_HANDLING_UNIT {
			return ids.unitSession(ctx, n, r.Actor, "")
		}
		return ids.session(n, byRole(r.Role)), nil
	}
	if strings.HasPrefix(method, "/cityhub.v1.CaseService/") {
		return ids.session(n, "lead"), nil
	}
	return ids.session(n, adminUser), nil
}
