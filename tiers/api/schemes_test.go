package api

import (
	"strings"
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/errcode"
	"github.com/cityhub/cityhub/tiers/evaluation"
)

// A city's own scheme (evaluation.schemes) is found by name beside the
// presets; an unknown name is refused naming the field and the known ones.
func TestEvaluationQueryUsesConfiguredSchemes(t *testing.T) {
	s := &CaseServer{schemes: map[string]evaluation.Scheme{"district-2026": {Name: "district-2026", ClosureWeight: 1}}}
	q, err := s.evaluationQuery(&pb.EvaluationRequest{At: "2026-11-20", Scheme: "district-2026"})
	if err != nil || q.Weights == nil || q.Weights.ClosureWeight != 1 {
		t.Fatalf("configured scheme: %+v %v", q, err)
	}
	if q, err := s.evaluationQuery(&pb.EvaluationRequest{At: "2026-11-20", Scheme: "jinhua"}); err != nil || q.Weights != nil {
		t.Fatalf("preset: %+v %v", q, err)
	}
	_, err = s.evaluationQuery(&pb.EvaluationRequest{At: "2026-11-20", Scheme: "nope"})
	field, reason, ok := errcode.FieldOf(err)
	if !ok || field != "scheme" || !strings.Contains(reason, "district-2026") {
		t.Fatalf("unknown scheme: %v", err)
	}
}
