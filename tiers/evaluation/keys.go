package evaluation

// Counter keys (store family e/):
//
//	e/ <period:5> <dimension> <value> 0x00 <indicator:1>  → int64 BE
//
//	period     code ('d' day, 'm' month), year (2 bytes BE), number
//	           (2 bytes BE: month*100+day, or month); releases before
//	           2026-12 also wrote 'w' (ISO week) and 'q' (quarter) keys,
//	           which nothing reads any more
//	dimension  'u' unit | 'r' <digits:1 byte: 6, 9 or 12> region | 'i' inspector
//	value      unit id, grid code prefix or inspector id
//	indicator  1..numIndicators, | 0x80 for the count restricted to cases
//	           from leaders and media (SOURCE_LEADER, SOURCE_MEDIA)
//
// One stored period × one dimension is one contiguous prefix, so a report
// for a week scans its seven days' prefixes only: about 7 × (units ×
// indicators) keys, however many cases there are. The indicator is the key's last byte after a 0x00,
// so a value is read back as everything between the dimension and that
// pair, whatever bytes it holds.

// Family is the store key family of the evaluation counters.
const Family = "e/"

// Dimension codes.
const (
	dimUnit      byte = 'u'
	dimRegion    byte = 'r'
	dimInspector byte = 'i'
)

// Dimension names (EvaluationRequest.dimension).
const (
	Unit      = "unit"
	Region    = "region"
	Inspector = "inspector"
)

// regionDigits are the grid prefixes regions are kept at: district (6),
// street (9) and community (12).
var regionDigits = [3]int{6, 9, 12}

// DefaultRegionDigits is the region level of a query that names none.
const DefaultRegionDigits = 9

// Indicators, as stored in the key's last byte.
const (
	indFiled byte = 1 + iota
	indDispatched
	indDue
	indClosed
	indClosedOnTime
	indHandledOnTime
	indRework
	indOverdue
	indExtensions
	indRecurrence
	numIndicators = iota

	// priorityBit marks the count of the same indicator over the cases
	// from leaders and media only (schemes may weight them).
	priorityBit byte = 0x80
)

// dimPrefix returns the key prefix of one period × one dimension.
func dimPrefix(b []byte, p period, dim byte, digits int) []byte {
	b = append(b, Family...)
	b = p.appendKey(b)
	b = append(b, dim)
	if dim == dimRegion {
		b = append(b, byte(digits))
	}
	return b
}
