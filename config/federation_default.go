package config

import _ "embed"

// DefaultFederation is the default federation topology (federation/default.yaml):
// a 苏州-like city 320500 with two districts, four streets and eight
// communities, 15 nodes of one replica each on loopback. cmd/cityhubdemo runs
// it; federation/topology.Load parses it.
//
//go:embed federation/default.yaml
var DefaultFederation []byte
