// Package catalogue holds the class catalogue of urban-management cases and
// the code formats they carry (DOMAIN.md section 4).
//
// A case is either a component (部件: a manhole cover, a street lamp, a bus
// shelter) or an event (事件: exposed garbage, illegal parking, a road
// collapse), classified by a 2-digit major class and a 2-digit minor class
// (3 digits for the 17-digit component series). The table of classes is data,
// not code: cities extend and re-cut the national table (GB/T 30428.2), add
// local extension majors, or encode ownership in the class itself. The
// default table is default.yaml in this package, embedded in the binary and
// returned by Default; a city supplies its own file to LoadFile. A Catalogue
// is immutable once loaded, so it can be shared between goroutines and
// swapped whole when a new version is deployed.
//
// The code formats are fixed by the national standards and live here too:
//
//   - unit grid code (单元网格): 15 digits, district(6) + street(3) +
//     community(3) + grid(3); see ValidateGridCode and ParseGridCode;
//   - component id (部件标识): 16 digits, district(6) + major(2) + minor(2) +
//     serial(6), or 17 digits with a 3-digit minor; see ValidateComponentID
//     and ParseComponentID.
//
// Errors wrap ErrInvalidCode (malformed code), ErrUnknownClass (well formed
// but not in the catalogue) or ErrBadCatalogue (a catalogue file that cannot
// be loaded). Catalogue.ValidateClass returns *FieldError values that name
// the offending proto field, for API layers to map onto InvalidArgument.
package catalogue
