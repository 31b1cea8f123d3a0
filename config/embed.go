package config

import _ "embed"

// DefaultCatalogue is the default class catalogue of components and events
// (catalogue/default.yaml). Package tiers/catalogue parses it; a city replaces
// it with its own file.
//
//go:embed catalogue/default.yaml
var DefaultCatalogue []byte
