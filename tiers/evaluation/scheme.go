package evaluation

import (
	"math"
	"slices"
)

// Scheme weighs a row's indicators into one score (DOMAIN.md section 7).
// It is data: cities differ, and a scheme can be loaded from configuration
// (the yaml names below). Every term is optional (zero: absent):
//
//	score = FilingPoints × filed / most filed by any row of the report
//	      + ClosureWeight × closure rate
//	      + OnTimeClosureWeight × on-time closure rate
//	      + OnTimeHandlingWeight × on-time handling rate
//	      + ReworkFreeWeight × max(0, 100 − rework rate)
//	      + max(0, OnTimeClosurePoints − BelowTargetPenalty × max(0, OnTimeClosureTarget − on-time closure rate))
//	      − ReworkPenalty × rework
//
// Rates are in percent and 0 when nothing is due. The counts that enter the
// score count a case from a leader or the media (SOURCE_LEADER,
// SOURCE_MEDIA) PriorityWeight times (0 or 1: once); the counts and rates
// shown in a row are plain.
type Scheme struct {
	Name                 string  `yaml:"name" json:"name"`
	FilingPoints         float64 `yaml:"filing_points" json:"filing_points"`
	ClosureWeight        float64 `yaml:"closure_weight" json:"closure_weight"`
	OnTimeClosureWeight  float64 `yaml:"on_time_closure_weight" json:"on_time_closure_weight"`
	OnTimeHandlingWeight float64 `yaml:"on_time_handling_weight" json:"on_time_handling_weight"`
	ReworkFreeWeight     float64 `yaml:"rework_free_weight" json:"rework_free_weight"`
	OnTimeClosureTarget  float64 `yaml:"on_time_closure_target" json:"on_time_closure_target"`
	OnTimeClosurePoints  float64 `yaml:"on_time_closure_points" json:"on_time_closure_points"`
	BelowTargetPenalty   float64 `yaml:"below_target_penalty" json:"below_target_penalty"`
	ReworkPenalty        float64 `yaml:"rework_penalty" json:"rework_penalty"`
	PriorityWeight       float64 `yaml:"priority_weight" json:"priority_weight"`
}

// DefaultScheme is the preset of a query that names none.
const DefaultScheme = "department"

// Presets are the two schemes of DOMAIN.md section 7.
//
// department (one platform's department score, at most 100): filing-count
// points (10 for the row that filed most, pro rata for the others) + 0.3 ×
// closure rate + 0.3 × on-time handling rate + 0.3 × (100 − rework rate).
//
// jinhua (Jinhua): an on-time closure rate of 70% or more earns 50 points,
// one point less per percentage point below (never below 0); each rework
// costs 0.2; cases from leaders and the media count double in both.
// Jinhua's −1 for shirking (推诿) has no indicator here and is not scored.
var Presets = map[string]Scheme{
	"department": {Name: "department", FilingPoints: 10, ClosureWeight: 0.3, OnTimeHandlingWeight: 0.3, ReworkFreeWeight: 0.3, PriorityWeight: 1},
	"jinhua":     {Name: "jinhua", OnTimeClosureTarget: 70, OnTimeClosurePoints: 50, BelowTargetPenalty: 1, ReworkPenalty: 0.2, PriorityWeight: 2},
}

// SchemeNames lists the presets, sorted.
func SchemeNames() []string {
	out := make([]string, 0, len(Presets))
	for n := range Presets {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// weighted is the count of ind with priority cases counted PriorityWeight
// times.
func (s Scheme) weighted(c *counts, ind byte) float64 {
	w := s.PriorityWeight
	if w == 0 {
		w = 1
	}
	return float64(c[0][ind]) + (w-1)*float64(c[1][ind])
}

// score computes the row's score; maxFiled is the largest weighted filed
// count of the report's rows.
func (s Scheme) score(c *counts, maxFiled float64) float64 {
	due := s.weighted(c, indDue)
	var score float64
	if s.FilingPoints != 0 && maxFiled > 0 {
		score += s.FilingPoints * s.weighted(c, indFiled) / maxFiled
	}
	onTimeClosure := rateF(s.weighted(c, indClosedOnTime), due)
	score += s.ClosureWeight * rateF(s.weighted(c, indClosed), due)
	score += s.OnTimeClosureWeight * onTimeClosure
	score += s.OnTimeHandlingWeight * rateF(s.weighted(c, indHandledOnTime), due)
	score += s.ReworkFreeWeight * math.Max(0, 100-rateF(s.weighted(c, indRework), due))
	if s.OnTimeClosurePoints != 0 {
		score += math.Max(0, s.OnTimeClosurePoints-s.BelowTargetPenalty*math.Max(0, s.OnTimeClosureTarget-onTimeClosure))
	}
	score -= s.ReworkPenalty * s.weighted(c, indRework)
	return score
}
