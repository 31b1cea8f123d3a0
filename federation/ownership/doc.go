// Package ownership is the responsibility catalogue (责任清单): the city's
// table of who must act on a problem of a given class at a given place
// (DOMAIN.md section 5). A Catalogue is parsed from two data files and
// checked against the federation topology:
//
//   - the rules (YAML): which unit owns which kind and class of problem,
//     where (a jurisdiction prefix, a node or a named set of grids), with
//     which priority; owners are a fixed unit, the component register's
//     supervising, owning or maintaining department (责随权走), a monthly
//     rotation among departments (ownerless manhole covers, 无主井盖), or the
//     locality (属地兜底: the first unit of the node of a given tier that
//     contains the grid);
//   - the component register (CSV): every known component with its grid and
//     its supervising (主管), owning (权属) and maintaining (养护) units.
//
// Resolve answers one Query with a *pb.Ownership: the one responsible unit
// (责任主体唯一), the node that hosts it, the deciding rule and a readable
// explanation, or a dispute when no rule covers the problem or equally
// ranked rules name different units; disputed cases go to the city's joint
// review (疑难案件会诊). Resolve reads no clock and no map order: the same
// catalogue and query always give the same answer, so the leader can stamp
// it into a Raft command.
//
// The sample city's catalogue is testdata/city/responsibility.yaml and
// components.csv (Sample). See DESIGN.md for the rule format and semantics.
package ownership
