// Package fsm is the Raft state machine of a tier node: a thin raft.FSM
// (and raft.BatchingFSM) that decodes each log entry's Command envelope and
// hands it to the processor, which applies it to the badger store in one
// transaction together with the applied index.
//
// Apply is deterministic: it never reads the clock, random numbers or the
// environment. Everything time-dependent (the case id's date, history
// timestamps, deadlines) is stamped into the command by the leader before it
// is proposed. `make lint` enforces this with cmd/cityhublint.
package fsm
