package geo

import cityhub "github.com/cityhub/cityhub"

// SampleFile is the sample city's grid layer (testdata/city/grids.geojson).
const SampleFile = cityhub.SampleGrids

// Sample returns the sample city's grid register: its 80 grids around 苏州
// (虎丘区 and 吴中区), for the demo's generator and the tests (no node takes
// it by default: geo.grids names a layer).
func Sample() (*Register, error) { return Parse(cityhub.SampleFile(SampleFile)) }
