// Package geo is the grid register's geometry: the polygons of the unit
// grids (单元网格) read from GeoJSON, the areas of communities, streets,
// districts and the city as the union of their grids, a spatial index that
// answers which grid a point lies in, and the conversions between the
// coordinate systems reports arrive in (WGS-84, GCJ-02, BD-09).
//
// Everything here is pure and deterministic: the API converts and locates
// before it proposes a report, so the command carries the grid code and
// WGS-84 coordinates and the state machine never converts. A Register is
// immutable after Parse and safe for concurrent use.
//
// Why S2 for the index and orb for the rest: see DESIGN.md.
package geo
