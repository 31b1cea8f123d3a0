package node

import "errors"

var (
	// ErrNoLeader is returned when the group has no known leader (an
	// election is under way or the node is cut off). Retry with the same
	// request id.
	ErrNoLeader = errors.New("no raft leader")
	// ErrNotLeader is returned for an operation only the leader can do
	// when forwarding is not possible.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrShutdown is returned once the node is shutting down.
	ErrShutdown = errors.New("node is shutting down")
	// ErrUnknownServer is returned when removing or transferring to a
	// server that is not a member.
	ErrUnknownServer = errors.New("unknown server")
	// ErrNoOtherVoter is returned when leadership cannot move because no
	// other voter exists.
	ErrNoOtherVoter = errors.New("no other voter to transfer leadership to")
	// ErrRejoinSelf is returned when the leader is asked to take itself
	// back into the group.
	ErrRejoinSelf = errors.New("the leader cannot rejoin its own group")
	// ErrUpgradeInProgress is returned for a command type that a member
	// of the group cannot apply yet (an older binary during a rolling
	// upgrade). Retry once every replica runs the new release.
	ErrUpgradeInProgress = errors.New("a replica of the group runs an older release that cannot apply this command")
	// ErrNotClientCommand refuses a command Propose was given whose type
	// no client request causes (the leader's own jobs use ApplyLocal).
	ErrNotClientCommand = errors.New("not a command a client request causes")
)
