package geo

import cityhub "github.com/cityhub/cityhub"

// SampleFile is the sample city's grid layer (testdata/city/grids.geojson).
const SampleFile = "grids.geojson"

// Sample returns the sample city's grid register: its 80 grids around 苏州
// (虎丘区 and 吴中区), the default of a node of the sample federation.
func Sample() (*Register, error) { return Parse(cityhub.SampleFile(SampleFile)) }
