// Package certs provides the mutual TLS of the federation: cityhub nodes
// (city, district, street, community, each a Raft group) talk to their parent
// and children over gRPC, and each side proves which node it is with a
// certificate whose CommonName is its topology name ("city", "d-320505",
// "s-320505001", "c-320505001001").
//
// GenerateDev makes a development CA and node certificates in a directory:
//
//	dir/ca.pem, dir/ca-key.pem              the CA (reused when present)
//	dir/<node>.pem, dir/<node>-key.pem      one pair per node
//
// Files names the three files a node needs; its ServerConfig and
// ClientConfig build the tls.Config of each end of a link (TLS 1.3, both
// sides verified against the CA), and PeerName reads the verified node name
// of the caller inside a gRPC handler or interceptor.
//
// The CA made here is for development and tests: its key sits unencrypted
// next to the node keys. Production certificates may come from any CA, as
// long as each node certificate carries the node name as CommonName and is
// valid for both server and client authentication.
package certs
