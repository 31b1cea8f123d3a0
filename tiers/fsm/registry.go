package fsm

import (
	"crypto/sha256"
	"fmt"
	"reflect"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// Kind is a Command body type: its field number in Command's body oneof
// (append-only: a number is never reused). Kind 0 is no valid command (an
// entry that does not decode, or has no body).
type Kind int32

// commandType is one row of the registry: everything the state machine
// knows about a Command body type. A new body type is a new row here (and
// the oneof field in command.proto); TestRegistryCoversEveryCommandBody
// holds the table to the descriptor.
type commandType struct {
	kind Kind
	// name is the oneof field's name: the label of the apply-time metric.
	name string
	// since is the log version that introduced the type (versions.go).
	since uint32
	// client: a client's request may cause it (the API builds it from a
	// request; a follower forwards it to the leader). The others are
	// proposed only by the leader's own jobs (relay, sweeper, reconciler,
	// anti-entropy, topology, membership, retention) through ApplyLocal.
	client bool
	// apply applies the entry inside its transaction. A returned error is
	// a storage failure; a refusal is Result.Err and writes nothing.
	apply func(e *entry) (*Result, error)
	// fingerprint hashes what the client asked for (see fingerprint); nil
	// hashes the whole body.
	fingerprint func(cmd *pb.Command) []byte
	// precheck decides on the leader what apply would refuse, reading
	// only (see Precheck); nil: only the request id and the catch-up rule
	// are decided before the log.
	precheck func(p *pending) (*Result, error)
	// replayed completes the answer to a replay (a request id applied
	// before, same body) from the state; nil answers with the recorded
	// case only.
	replayed func(tx *store.Tx, cmd *pb.Command, res *Result) error
	// fieldVersion is the log version the fields added to the type after
	// it was introduced need, when set; nil: none were.
	fieldVersion func(cmd *pb.Command) uint32
	// keyField names a field of the body, part of a store key, that is
	// longer than maxKeyField ("" when none is); nil: no such field.
	keyField func(cmd *pb.Command) string
	// field is the body's field in Command (set at init).
	field protoreflect.FieldDescriptor
}

// commandTypes is the registry, in number order; numbers are never reused
// (TestCommandNumbersAreAppendOnly).
var commandTypes = []commandType{
	{kind: 10, name: "report", since: 1, client: true,
		apply:       caseCommand(func(e *entry) (*pb.Case, *Result, error) { return report(e.tx, e.cmd, e.cmd.GetReport(), e.fv) }),
		fingerprint: reportFingerprint, precheck: precheckReport,
		keyField: func(cmd *pb.Command) string {
			return longKey("grid_code", cmd.GetReport().GetCase().GetGridCode())
		}},
	{kind: 11, name: "act", since: 1, client: true,
		apply:       caseCommand(func(e *entry) (*pb.Case, *Result, error) { return act(e.tx, e.cmd, e.cmd.GetAct(), e.fv) }),
		fingerprint: actFingerprint, precheck: precheckAct,
		keyField: func(cmd *pb.Command) string { return longKey("unit", cmd.GetAct().GetUnit()) }},
	{kind: 12, name: "register_node", since: 1,
		apply: func(e *entry) (*Result, error) {
			r := e.cmd.GetRegisterNode()
			return &Result{}, e.tx.PutNode(&pb.NodeInfo{NodeId: r.NodeId, RaftAddr: r.RaftAddr, GrpcAddr: r.GrpcAddr, HttpAddr: r.HttpAddr, InternalAddr: r.InternalAddr, LogVersion: r.LogVersion})
		},
		keyField: func(cmd *pb.Command) string { return longKey("node_id", cmd.GetRegisterNode().GetNodeId()) }},
	{kind: 13, name: "set_topology", since: 1,
		apply: func(e *entry) (*Result, error) { return setTopology(e.tx, e.cmd.GetSetTopology(), e.fed) }},
	{kind: 14, name: "deliver", since: 1,
		apply: func(e *entry) (*Result, error) { return deliver(e.tx, e.cmd, e.cmd.GetDeliver(), e.fv) },
		fieldVersion: func(cmd *pb.Command) uint32 {
			if d := cmd.GetDeliver(); d.GetIncarnation() != 0 || d.GetAdvance() {
				return 2
			}
			return 1
		},
		keyField: func(cmd *pb.Command) string { return longKey("from", cmd.GetDeliver().GetFrom()) }},
	{kind: 15, name: "trim_outbox", since: 1,
		apply: func(e *entry) (*Result, error) {
			t := e.cmd.GetTrimOutbox()
			if _, err := e.tx.Trim(t.Link, t.Upto); err != nil {
				return nil, err
			}
			return &Result{}, nil
		},
		keyField: func(cmd *pb.Command) string { return longKey("link", cmd.GetTrimOutbox().GetLink()) }},
	{kind: 16, name: "mark_overdue", since: 1,
		apply: caseCommand(func(e *entry) (*pb.Case, *Result, error) {
			return markOverdue(e.tx, e.cmd, e.cmd.GetMarkOverdue(), e.fv)
		})},
	{kind: 17, name: "import_cases", since: 1, client: true,
		apply: func(e *entry) (*Result, error) {
			return importCases(e.tx, e.cmd, e.cmd.GetImportCases(), e.fv, e.index, e.fp)
		},
		fingerprint: importFingerprint, replayed: importReplayed},
	{kind: 18, name: "reconcile", since: 1,
		apply: func(e *entry) (*Result, error) { return reconcile(e.tx, e.cmd, e.cmd.GetReconcile(), e.fv) }},
	{kind: 19, name: "reconcile_run", since: 1,
		apply: func(e *entry) (*Result, error) { return reconcileRun(e.tx, e.cmd.GetReconcileRun()) }},
	{kind: 20, name: "repair", since: 1,
		apply: func(e *entry) (*Result, error) { return repair(e.tx, e.cmd, e.cmd.GetRepair(), e.fv, e.fed) },
		fieldVersion: func(cmd *pb.Command) uint32 {
			if cmd.GetRepair().GetCaughtUp() {
				return 2
			}
			return 1
		}},
	{kind: 21, name: "mark_overdue_batch", since: 1,
		apply: func(e *entry) (*Result, error) {
			return markOverdueBatch(e.tx, e.cmd, e.cmd.GetMarkOverdueBatch(), e.fv)
		}},
	// An identity change has never had a fingerprint (its records hold
	// none): a request id applied before replays whatever the body.
	{kind: 22, name: "auth", since: 1, client: true,
		apply:       func(e *entry) (*Result, error) { return applyAuth(e.tx, e.cmd, e.cmd.GetAuth(), e.index, e.fp) },
		fingerprint: func(*pb.Command) []byte { return nil }},
	// A client uploads chunks and attaches them; the purge is the
	// leader's retention job (the API's forward check refuses it).
	{kind: 23, name: "attach_evidence", since: 2, client: true,
		apply: func(e *entry) (*Result, error) {
			return attachEvidence(e.tx, e.cmd, e.cmd.GetAttachEvidence(), e.fv, e.index, e.fp)
		},
		fingerprint: evidenceFingerprint,
		precheck: func(p *pending) (*Result, error) {
			return precheckEvidence(p.tx, p.cmd.GetAttachEvidence(), p.fv, p.getCase)
		},
		keyField: func(cmd *pb.Command) string {
			ae := cmd.GetAttachEvidence()
			return longKey("sha256", ae.GetChunk().GetSha256(), ae.GetAttach().GetRef().GetSha256(), ae.GetPurge().GetSha256())
		}},
	// Reports in volume: each item is the ReportCase it stands for
	// (batch.go), with its own request id; the batch has none of its own,
	// so no fingerprint and no replay of its own either.
	{kind: 24, name: "report_batch", since: 3, client: true,
		apply: func(e *entry) (*Result, error) {
			return reportBatch(e.tx, e.cmd, e.cmd.GetReportBatch(), e.fv, e.index)
		},
		fingerprint: func(*pb.Command) []byte { return nil },
		precheck: func(p *pending) (*Result, error) {
			return precheckBatch(p.tx, p.cmd, p.cmd.GetReportBatch(), p.getCase)
		},
		keyField: func(cmd *pb.Command) string {
			for _, it := range cmd.GetReportBatch().GetItems() {
				if f := longKey("request_id", it.GetRequestId()) + longKey("grid_code", it.GetReport().GetCase().GetGridCode()); f != "" {
					return f
				}
			}
			return ""
		}},
}

// byKind indexes the registry by body number, byBody by the Go type of
// Command.Body that holds the body (a lookup by the interface's dynamic
// type, cheaper than protoreflect's WhichOneof on every entry).
var (
	byKind map[Kind]*commandType
	byBody map[reflect.Type]*commandType
)

func init() {
	byKind = make(map[Kind]*commandType, len(commandTypes))
	byBody = make(map[reflect.Type]*commandType, len(commandTypes))
	for i := range commandTypes {
		t := &commandTypes[i]
		fd := bodyOneof.Fields().ByNumber(protoreflect.FieldNumber(t.kind))
		if fd == nil {
			panic(fmt.Sprintf("fsm: registry row %d (%s) names no field of Command.body", t.kind, t.name))
		}
		cmd := &pb.Command{}
		m := cmd.ProtoReflect()
		m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
		t.field = fd
		byKind[t.kind] = t
		byBody[reflect.TypeOf(cmd.Body)] = t
	}
}

// entry is one command entry being applied.
type entry struct {
	tx    *store.Tx
	cmd   *pb.Command
	index uint64
	fv    *fedView
	fed   *fedCache
	fp    []byte // the command's fingerprint
	// item is the command's place in its entry: 0, or the item number of
	// a batch's report, so each item's audit event has its own key.
	item int
}

// pending is a stamped command the leader prechecks.
type pending struct {
	tx      *store.Tx
	cmd     *pb.Command
	fv      *fedView
	getCase func(id string) (*pb.Case, error)
}

var bodyOneof = (&pb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body")

// typeOf is the registry row of cmd's body, nil for a command without a
// known body (see unknownCommand).
func typeOf(cmd *pb.Command) *commandType {
	if cmd == nil || cmd.Body == nil {
		return nil
	}
	return byBody[reflect.TypeOf(cmd.Body)]
}

// unknownCommand is the one rule for an entry whose body the registry has
// no row for. A body this binary does not know was written by a newer
// release: refusing it would diverge from the replicas that apply it, so
// the replica stops (panics) until its binary is upgraded. A command with
// no body at all is refused as bad. The leader never proposes either: the
// version gate (RequiredVersion) and the API's checks stop them first.
func unknownCommand(cmd *pb.Command, index uint64) *Result {
	if fromNewerRelease(cmd) {
		panic(fmt.Sprintf("cityhub fsm: index %d: %v: upgrade this replica's binary, then restart it", index, ErrNewerLog))
	}
	if cmd.Body != nil {
		// A body in command.proto without a row here: a build error the
		// registry's tests catch; never apply it as something else.
		panic(fmt.Sprintf("cityhub fsm: index %d: command body %T has no row in the command registry", index, cmd.Body))
	}
	return &Result{Err: fmt.Errorf("%w: index %d has no body", ErrBadCommand, index)}
}

// caseCommand makes the apply function of a command whose result is one
// case: the request is recorded (a retry replays it) and the change
// audited, after the body's own function; a refusal writes neither.
func caseCommand(fn func(e *entry) (*pb.Case, *Result, error)) func(e *entry) (*Result, error) {
	return func(e *entry) (*Result, error) {
		c, res, err := fn(e)
		if err != nil || res != nil {
			return res, err
		}
		if e.cmd.RequestId != "" {
			if err := e.tx.PutRequest(e.cmd.RequestId, &pb.RequestRecord{CaseId: c.Id, Version: c.Version, Fingerprint: e.fp, LogIndex: e.index}); err != nil {
				return nil, err
			}
		}
		if err := auditCase(e.tx, c, e.index, e.item); err != nil {
			return nil, err
		}
		return &Result{Case: c}, nil
	}
}

// ClientMayCause reports whether a client's request may cause cmd: its
// body is of a type the API builds from a request (report, action,
// import, identity change, evidence). Commands of the other types are the
// leader's own and must not arrive from outside it (a forwarded command,
// say). It says nothing of the body's content.
func ClientMayCause(cmd *pb.Command) bool {
	t := typeOf(cmd)
	return t != nil && t.client
}

// CommandType describes one command body type this binary knows.
type CommandType struct {
	Kind Kind
	// Name is the body's field name in command.proto (report, act…).
	Name string
	// Since is the log version that introduced it.
	Since uint32
	// Client says a client's request may cause it (ClientMayCause).
	Client bool
}

// CommandTypes lists the command body types this binary knows, by number.
func CommandTypes() []CommandType {
	out := make([]CommandType, len(commandTypes))
	for i, t := range commandTypes {
		out[i] = CommandType{Kind: t.kind, Name: t.name, Since: t.since, Client: t.client}
	}
	return out
}

// KindOf is cmd's body type (0 without a known body).
func KindOf(cmd *pb.Command) Kind {
	if t := typeOf(cmd); t != nil {
		return t.kind
	}
	return 0
}

// String is the body's name in command.proto ("invalid" for 0, "unknown"
// for a number this binary does not know).
func (k Kind) String() string {
	if k == 0 {
		return "invalid"
	}
	if t := byKind[k]; t != nil {
		return t.name
	}
	return "unknown"
}

// EntryObserver is told of the processing of each command entry the state
// machine applies (tiers/node times it for the apply-time metric). The
// state machine never reads the clock itself: Begin's value goes to End
// unread, and nothing of either reaches the state.
type EntryObserver interface {
	// Begin is called before an entry is processed.
	Begin() int64
	// End is called after, with the entry's body type (0: not a valid
	// command) and what Begin returned.
	End(kind Kind, begin int64)
}

// bodyMessage is the message cmd's body (of type t) holds.
func (t *commandType) bodyMessage(cmd *pb.Command) proto.Message {
	return cmd.ProtoReflect().Get(t.field).Message().Interface()
}

// hashMessage is the SHA-256 of m's deterministic encoding.
func hashMessage(m proto.Message) []byte {
	raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	sum := sha256.Sum256(raw)
	return sum[:]
}

// longKey names field when one of its values is longer than maxKeyField.
func longKey(field string, values ...string) string {
	for _, v := range values {
		if len(v) > maxKeyField {
			return field
		}
	}
	return ""
}
