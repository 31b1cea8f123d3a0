package deadline

import "time"

// timeUnixMilli converts a stamped instant; it never reads the clock.
func timeUnixMilli(ms int64) time.Time { return time.UnixMilli(ms) }
