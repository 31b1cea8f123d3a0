// Package config is the typed configuration of one cityhub node (cityhubd).
//
// # Sources and precedence
//
// Load merges, from lowest to highest precedence:
//
//  1. built-in defaults (Default, plus derived values: node.data_dir
//     defaults to data/<node.id>, raft.advertise to raft.addr);
//  2. a YAML file (optional). Keys not known to Config are an error naming
//     the key, e.g. "raft.peers[0].grpc_adr: unknown key";
//  3. environment variables CITYHUB_*;
//  4. command-line flags registered by BindFlags, but only those the user
//     actually set on the command line: a flag left at its default never
//     overrides the file or the environment.
//
// The merged result is validated (Config.Validate), which reports every bad
// key at once, each as a *FieldError prefixed with the key's dotted path,
// e.g. `raft.peers[1].raft_addr: "x" is not host:port`.
//
// # Key names and environment variables
//
// Keys are the snake_case mapstructure names of the struct fields, nested
// with dots: node.id, node.data_dir, node.tier, node.jurisdiction,
// node.time_zone, node.verify_state, node.gc_percent, raft.addr, raft.advertise, raft.bootstrap, raft.join,
// raft.peers, raft.heartbeat_timeout, raft.election_timeout,
// raft.leader_lease_timeout, raft.commit_timeout, raft.snapshot_interval,
// raft.snapshot_threshold, raft.trailing_logs, raft.marker_snapshot_cases, raft.max_append_entries,
// raft.apply_timeout, raft.wal_segment_size, grpc.addr, http.addr, catalogue.path, log.level and
// log.format; node.group, internal.addr, internal.insecure and
// internal.tls.{ca,cert,key} for the replicas' internal plane (see
// InternalConfig: write forwarding and raft, over mTLS with the group's
// name as certificate CommonName; plain text only on loopback).
//
// The environment variable for a key is CITYHUB_ followed by the key in
// upper case with dots replaced by underscores: node.id is CITYHUB_NODE_ID,
// raft.addr is CITYHUB_RAFT_ADDR, raft.heartbeat_timeout is
// CITYHUB_RAFT_HEARTBEAT_TIMEOUT. Empty variables are ignored. Durations
// are Go duration strings ("500ms", "2m"); booleans are "true"/"false";
// raft.join takes a comma-separated list. raft.peers can only be given in
// the file.
//
// Relative paths (node.data_dir, catalogue.path) are relative to the
// process's working directory, not to the config file.
//
// # Flags
//
// BindFlags registers --node-id, --data-dir, --tier, --jurisdiction,
// --raft-addr, --grpc-addr, --http-addr, --internal-addr, --bootstrap, --join (repeatable or
// comma-separated), --catalogue and --log-level. The caller handles --config
// and passes its value to Load.
package config
