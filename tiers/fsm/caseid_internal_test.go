package fsm

import (
	"fmt"
	"math"
	"testing"
)

// The case id is part of every replica's state: built without fmt, it
// must stay byte for byte what fmt made.
func TestCaseIDIsFmtsFormat(t *testing.T) {
	for _, seq := range []uint64{0, 1, 9, 10, 99, 100, 12345, 99999, 100000, 999999, 1000000, 1234567, math.MaxUint64} {
		want := fmt.Sprintf("%s-%s-%06d", "320582", "20260501", seq)
		if got := caseID("320582", "20260501", seq); got != want {
			t.Errorf("caseID(%d) = %q, want %q", seq, got, want)
		}
	}
}
