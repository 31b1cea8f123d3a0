// Package openapi embeds the OpenAPI (Swagger 2.0) document generated from
// proto/cityhub/v1 by `make proto`, so every node can serve it.
package openapi

import _ "embed"

// Document is the merged OpenAPI document of the cityhub REST API.
//
//go:embed cityhub.swagger.json
var Document []byte
