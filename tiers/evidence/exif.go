package evidence

import (
	"fmt"
	"strings"
	"time"

	exif "github.com/dsoprea/go-exif/v3"
	exifcommon "github.com/dsoprea/go-exif/v3/common"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// ExifBytes is how much of a photo ReadExif searches: the EXIF block sits
// in the first segments of a JPEG (APP1, at most 64 KiB).
const ExifBytes = 256 << 10

// ReadExif reads the time a photo was taken, its GPS position and camera
// from the EXIF block in head (the first ExifBytes of the content). A
// photo without EXIF gives nil, nil; unreadable EXIF gives an error the
// caller may log and ignore (it is metadata, never a reason to refuse).
// A time without a zone is read in loc.
func ReadExif(head []byte, loc *time.Location) (info *pb.ExifInfo, err error) {
	defer func() {
		// The library reports some malformed input by panicking: no
		// photo may take a node down.
		if p := recover(); p != nil {
			info, err = nil, fmt.Errorf("exif: %v", p)
		}
	}()
	raw, err := exif.SearchAndExtractExif(head)
	if err != nil {
		if err == exif.ErrNoExif {
			return nil, nil
		}
		return nil, fmt.Errorf("exif: %w", err)
	}
	im, err := exifcommon.NewIfdMappingWithStandard()
	if err != nil {
		return nil, fmt.Errorf("exif: %w", err)
	}
	_, index, err := exif.Collect(im, exif.NewTagIndex(), raw)
	if err != nil {
		return nil, fmt.Errorf("exif: %w", err)
	}
	root := index.RootIfd
	if root == nil {
		return nil, nil
	}
	info = &pb.ExifInfo{}
	mk, model := tagString(root, "Make"), tagString(root, "Model")
	info.Camera = strings.TrimSpace(strings.TrimSpace(mk) + " " + strings.TrimSpace(model))
	if sub, err := root.ChildWithIfdPath(exifcommon.IfdExifStandardIfdIdentity); err == nil {
		if s := tagString(sub, "DateTimeOriginal"); s != "" {
			if t, err := parseExifTime(s, tagString(sub, "OffsetTimeOriginal"), loc); err == nil {
				info.TakenAt = timestamppb.New(t)
			}
		}
	}
	if info.TakenAt == nil {
		if s := tagString(root, "DateTime"); s != "" {
			if t, err := parseExifTime(s, "", loc); err == nil {
				info.TakenAt = timestamppb.New(t)
			}
		}
	}
	if gps, err := root.ChildWithIfdPath(exifcommon.IfdGpsInfoStandardIfdIdentity); err == nil {
		if gi, err := gps.GpsInfo(); err == nil {
			lat, lng := gi.Latitude.Decimal(), gi.Longitude.Decimal()
			if lat >= -90 && lat <= 90 && lng >= -180 && lng <= 180 && (lat != 0 || lng != 0) {
				info.HasPosition, info.Lat, info.Lng = true, lat, lng
			}
		}
	}
	if info.TakenAt == nil && !info.HasPosition && info.Camera == "" {
		return nil, nil
	}
	return info, nil
}

func tagString(ifd *exif.Ifd, name string) string {
	res, err := ifd.FindTagWithName(name)
	if err != nil || len(res) == 0 {
		return ""
	}
	v, err := res[0].Value()
	if err != nil {
		return ""
	}
	s, _ := v.(string)
	return strings.TrimRight(s, "\x00 ")
}

// parseExifTime reads "2006:01:02 15:04:05" with an optional offset
// ("+08:00") in its own tag, else in loc.
func parseExifTime(s, offset string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	if offset != "" {
		if t, err := time.Parse("2006:01:02 15:04:05-07:00", s+offset); err == nil {
			return t, nil
		}
	}
	return time.ParseInLocation("2006:01:02 15:04:05", s, loc)
}
