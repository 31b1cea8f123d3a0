package geo

import (
	"fmt"
	"math"
	"strings"
)

// CRS is a coordinate reference system a point may be given in.
type CRS int

// The coordinate systems reports arrive in (DOMAIN.md §12).
const (
	// WGS84 is GPS and international maps (EPSG:4326); CGCS2000, the
	// datum grid layers are delivered in, agrees with it to centimetres.
	// Everything is stored and compared in WGS-84.
	WGS84 CRS = iota + 1
	// GCJ02 is the obfuscated datum of maps published in China (Amap/高德,
	// Tencent, Apple Maps in China): hundreds of metres off WGS-84.
	GCJ02
	// BD09 is Baidu's datum, a further transform on top of GCJ-02.
	BD09
)

func (c CRS) String() string {
	switch c {
	case WGS84:
		return "wgs84"
	case GCJ02:
		return "gcj02"
	case BD09:
		return "bd09"
	}
	return fmt.Sprintf("CRS(%d)", int(c))
}

// ParseCRS reads a coordinate system's name: wgs84, gcj02 or bd09, in any
// case, with or without a CRS_ prefix, dashes or underscores (WGS-84,
// CRS_GCJ02, bd-09); EPSG:4326 is WGS-84. The empty string is WGS-84.
func ParseCRS(s string) (CRS, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	n = strings.TrimPrefix(n, "crs_")
	n = strings.NewReplacer("-", "", "_", "", " ", "").Replace(n)
	switch n {
	case "", "wgs84", "epsg:4326", "gps", "cgcs2000":
		return WGS84, nil
	case "gcj02", "amap", "gaode":
		return GCJ02, nil
	case "bd09", "bd09ll", "baidu":
		return BD09, nil
	}
	return 0, fmt.Errorf("unknown coordinate system %q: want wgs84, gcj02 or bd09", s)
}

// ToWGS84 converts a point given in crs to WGS-84. GCJ-02 has no closed
// inverse: it is inverted by iteration to within 1e-9 degrees (0.1 mm),
// and BD-09 likewise through GCJ-02.
func ToWGS84(lat, lng float64, crs CRS) (float64, float64, error) {
	switch crs {
	case WGS84:
		return lat, lng, nil
	case GCJ02:
		la, ln := gcj02ToWGS84(lat, lng)
		return la, ln, nil
	case BD09:
		la, ln := bd09ToGCJ02(lat, lng)
		la, ln = gcj02ToWGS84(la, ln)
		return la, ln, nil
	}
	return 0, 0, fmt.Errorf("unknown coordinate system %d", int(crs))
}

// FromWGS84 converts a WGS-84 point to crs (the forward transforms are
// closed forms).
func FromWGS84(lat, lng float64, crs CRS) (float64, float64, error) {
	switch crs {
	case WGS84:
		return lat, lng, nil
	case GCJ02:
		la, ln := wgs84ToGCJ02(lat, lng)
		return la, ln, nil
	case BD09:
		la, ln := wgs84ToGCJ02(lat, lng)
		la, ln = gcj02ToBD09(la, ln)
		return la, ln, nil
	}
	return 0, 0, fmt.Errorf("unknown coordinate system %d", int(crs))
}

// The GCJ-02 transform: the widely published public algorithm (the
// Krasovsky ellipsoid's semi-major axis and eccentricity, and the fixed
// trigonometric offsets in x = lng-105, y = lat-35). Outside mainland
// China's rough bounding box GCJ-02 equals WGS-84.
const (
	gcjA  = 6378245.0
	gcjEE = 0.00669342162296594323
)

// InChina reports whether GCJ-02 offsets a point at all (the bounding box
// every implementation of the algorithm uses).
func InChina(lat, lng float64) bool {
	return lng >= 72.004 && lng <= 137.8347 && lat >= 0.8293 && lat <= 55.8271
}

func gcjDelta(lat, lng float64) (dLat, dLng float64) {
	x, y := lng-105.0, lat-35.0
	xPi, yPi := x*math.Pi, y*math.Pi
	d := (20.0*math.Sin(6.0*xPi) + 20.0*math.Sin(2.0*xPi)) * 2.0 / 3.0
	dLat = -100.0 + 2.0*x + 3.0*y + 0.2*y*y + 0.1*x*y + 0.2*math.Sqrt(math.Abs(x)) + d +
		(20.0*math.Sin(yPi)+40.0*math.Sin(yPi/3.0))*2.0/3.0 +
		(160.0*math.Sin(yPi/12.0)+320.0*math.Sin(yPi/30.0))*2.0/3.0
	dLng = 300.0 + x + 2.0*y + 0.1*x*x + 0.1*x*y + 0.1*math.Sqrt(math.Abs(x)) + d +
		(20.0*math.Sin(xPi)+40.0*math.Sin(xPi/3.0))*2.0/3.0 +
		(150.0*math.Sin(xPi/12.0)+300.0*math.Sin(xPi/30.0))*2.0/3.0
	radLat := lat / 180.0 * math.Pi
	magic := math.Sin(radLat)
	magic = 1 - gcjEE*magic*magic
	sqrtMagic := math.Sqrt(magic)
	dLat = (dLat * 180.0) / ((gcjA * (1 - gcjEE)) / (magic * sqrtMagic) * math.Pi)
	dLng = (dLng * 180.0) / (gcjA / sqrtMagic * math.Cos(radLat) * math.Pi)
	return dLat, dLng
}

func wgs84ToGCJ02(lat, lng float64) (float64, float64) {
	if !InChina(lat, lng) {
		return lat, lng
	}
	dLat, dLng := gcjDelta(lat, lng)
	return lat + dLat, lng + dLng
}

// inverseTolerance is where the iterative inverses stop: 1e-9 degrees is
// about 0.1 mm on the ground.
const inverseTolerance = 1e-9

// gcj02ToWGS84 inverts wgs84ToGCJ02 by fixed-point iteration: start at the
// GCJ-02 point, move by the residual of the forward transform until it is
// below inverseTolerance. The offset changes by about 1e-5 of itself per
// metre, so each step gains about five digits; three steps are typical.
func gcj02ToWGS84(lat, lng float64) (float64, float64) {
	if !InChina(lat, lng) {
		return lat, lng
	}
	wLat, wLng := lat, lng
	for i := 0; i < 30; i++ {
		gLat, gLng := wgs84ToGCJ02(wLat, wLng)
		eLat, eLng := lat-gLat, lng-gLng
		wLat, wLng = wLat+eLat, wLng+eLng
		if math.Abs(eLat) < inverseTolerance && math.Abs(eLng) < inverseTolerance {
			break
		}
	}
	return wLat, wLng
}

// BD-09: Baidu's published transform on top of GCJ-02.
const bdXPi = math.Pi * 3000.0 / 180.0

func gcj02ToBD09(lat, lng float64) (float64, float64) {
	z := math.Sqrt(lng*lng+lat*lat) + 0.00002*math.Sin(lat*bdXPi)
	theta := math.Atan2(lat, lng) + 0.000003*math.Cos(lng*bdXPi)
	return z*math.Sin(theta) + 0.006, z*math.Cos(theta) + 0.0065
}

// bd09ToGCJ02 starts from Baidu's published approximate inverse and
// refines it by iteration like gcj02ToWGS84 (the approximation alone is
// off by up to a few metres).
func bd09ToGCJ02(lat, lng float64) (float64, float64) {
	x, y := lng-0.0065, lat-0.006
	z := math.Sqrt(x*x+y*y) - 0.00002*math.Sin(y*bdXPi)
	theta := math.Atan2(y, x) - 0.000003*math.Cos(x*bdXPi)
	gLat, gLng := z*math.Sin(theta), z*math.Cos(theta)
	for i := 0; i < 30; i++ {
		bLat, bLng := gcj02ToBD09(gLat, gLng)
		eLat, eLng := lat-bLat, lng-bLng
		gLat, gLng = gLat+eLat, gLng+eLng
		if math.Abs(eLat) < inverseTolerance && math.Abs(eLng) < inverseTolerance {
			break
		}
	}
	return gLat, gLng
}

// EarthRadius is the mean radius (IUGG) the distances use, in metres.
const EarthRadius = 6371008.8

// Distance is the great-circle (haversine) distance in metres between two
// WGS-84 points. Both must be WGS-84: a distance between points on
// different datums is meaningless (GCJ-02 is hundreds of metres off).
func Distance(lat1, lng1, lat2, lng2 float64) float64 {
	rad := math.Pi / 180
	dLat, dLng := (lat2-lat1)*rad, (lng2-lng1)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLng/2)*math.Sin(dLng/2)
	return 2 * EarthRadius * math.Asin(math.Min(1, math.Sqrt(h)))
}
