// Package relay is the sending side of a node's links: Relay, one sender
// and one trimmer per neighbour, active on the group's leader only, reads
// the outbox from the acknowledged mark, delivers batches to the
// neighbour's leader and trims what the neighbour acknowledged through the
// log. The wire it sends over (the FederationService that receives, the
// neighbour client, the dial options) is federation/wire. See
// federation/DESIGN.md for the protocol and its failure cases.
package relay
