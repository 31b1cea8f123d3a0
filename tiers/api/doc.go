// Package api serves a tier node over gRPC (CaseService, ClusterService and
// the internal ForwardService) and over REST/JSON through grpc-gateway, with
// /healthz, /readyz, /metrics and the OpenAPI document beside it.
//
// Requests are validated here (bad input never reaches raft), writes become
// leader-stamped Commands through the node, reads are served at the asked
// consistency level, and every error leaves through the one table of
// tiers/errcode (toStatus, errors.go), which the federation server shares.
package api
