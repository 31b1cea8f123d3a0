package config

import cityhub "github.com/cityhub/cityhub"

// DefaultFederation is the default federation topology, the sample city's
// testdata/city/federation.yaml: a 苏州-like city 320500 with two districts,
// four streets and eight communities, 15 nodes of one replica each on
// loopback. cmd/cityhubdemo runs it; federation/topology.Load parses it.
var DefaultFederation = cityhub.SampleFile("federation.yaml")
