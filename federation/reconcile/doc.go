// Package reconcile moves every case to the node and unit that own it
// (DOMAIN.md sections 2 and 5): city-owned cases piled up in a district,
// district-owned cases filed at the city, cases under the wrong district or
// street, cases dispatched to a unit that no longer exists.
//
// The Planner is pure: for a case the node holds it asks the responsibility
// catalogue (Owners) who owns it and picks, from one table of owner position
// × stage (Table), one ordinary workflow action: transfer up (上交) when the
// owner is not at or below the node, dispatch or reassign (改派) when it is,
// hand down (下派) a case already dispatched to its owner's unit below, deny a
// first return by the owner, refer to the city's joint review queue (提请会诊)
// when the catalogue cannot name one owner or the owner sent it back twice.
// The Reconciler runs on the group's leader: it scans the node's open cases,
// proposes the moves in batches through the Raft log (command 18, each move
// planned against the case's version, so a retried or resumed batch never
// moves a case twice), records each case's outcome per run, and builds the
// report (moved, pending, disputed, rejected, failed by kind, class, unit,
// age and destination) from those records; a move the state machine refuses
// is recorded as failed with the refusal, never dropped. The follow loop
// continues cases another node's reconciler handed up, so a case crosses as
// many tiers as it must. See federation/DESIGN.md, "Reconciliation".
package reconcile
