package config

import _ "embed"

// DefaultDeadlinePolicy is the embedded deadline policy (working calendar
// and time limits of DOMAIN.md section 6), used when deadlines.policy is
// empty.
//
//go:embed deadlines/default.yaml
var DefaultDeadlinePolicy []byte
