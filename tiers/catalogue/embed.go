package catalogue

import _ "embed"

// defaultYAML is the default class catalogue of components and events
// (default.yaml beside this file), returned parsed by Default; a city
// replaces it with its own file (LoadFile).
//
//go:embed default.yaml
var defaultYAML []byte
