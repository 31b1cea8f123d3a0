// Package auth is who may call a tier node and what they may do there.
//
// A caller is authenticated into a Principal (a person with an account or a
// token from the city's identity provider, an integrator with an API key, or
// a replica or neighbouring node with its mTLS certificate). What a
// principal may do is one table, Rules: role × permission → scope. The API
// asks Authorize before it reads or proposes anything, so a refusal writes
// nothing, and the same rules hold over gRPC, REST and the CLI.
//
// See DESIGN.md for the token formats, the key rotation and why the
// identities live in the tier's replicated state.
package auth
