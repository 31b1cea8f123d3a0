// Package deadline turns the working calendar and the city's time limits
// into deadlines (DOMAIN.md section 6). The leader stamps every deadline
// into the command it proposes (Stamper), the state machine keeps the
// stage deadline of each case (Settle, deterministic), and the leader of
// the holder's group marks cases whose deadline passed, once each
// (Sweeper), which supervises (督办) them and, through the federation,
// escalates them to the tiers above.
package deadline

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/calendar"
)

// Limit is the working time a stage may take, by urgency.
type Limit struct {
	Ordinary time.Duration
	Urgent   time.Duration
}

func (l Limit) For(u pb.Urgency) time.Duration {
	if u == pb.Urgency_URGENCY_URGENT && l.Urgent > 0 {
		return l.Urgent
	}
	return l.Ordinary
}

// Stage names the limits of the policy.
type Stage string

const (
	StageVerify   Stage = "verify"
	StageFile     Stage = "file"
	StageDispatch Stage = "dispatch"
	StageHandle   Stage = "handle"
	StageCheck    Stage = "check"
	StageClose    Stage = "close"
)

var stages = []Stage{StageVerify, StageFile, StageDispatch, StageHandle, StageCheck, StageClose}

// Policy is a city's working calendar and time limits.
type Policy struct {
	Calendar *calendar.Calendar
	Limits   map[Stage]Limit
	// HandleByClass overrides the handling limit for a class, keyed by
	// ClassKey.
	HandleByClass map[string]Limit
}

// ClassKey is the key of a class in HandleByClass: "event/0102".
func ClassKey(kind pb.Kind, major, minor string) string {
	k := "component"
	if kind == pb.Kind_KIND_EVENT {
		k = "event"
	}
	return k + "/" + major + minor
}

// Limit returns the working time stage may take for case c.
func (p *Policy) Limit(stage Stage, c *pb.Case) time.Duration {
	if stage == StageHandle {
		if l, ok := p.HandleByClass[ClassKey(c.GetKind(), c.GetMajorCode(), c.GetMinorCode())]; ok {
			return l.For(c.GetUrgency())
		}
	}
	return p.Limits[stage].For(c.GetUrgency())
}

// Deadline is the instant stage ends when it starts at `from`.
func (p *Policy) Deadline(stage Stage, c *pb.Case, from time.Time) time.Time {
	return p.Calendar.Add(from, p.Limit(stage, c))
}

type policyFile struct {
	Calendar struct {
		TimeZone   string            `yaml:"time_zone"`
		Windows    []calendar.Window `yaml:"windows"`
		Workdays   []string          `yaml:"workdays"`
		Holidays   []string          `yaml:"holidays"`
		MakeupDays []string          `yaml:"makeup_days"`
	} `yaml:"calendar"`
	Limits map[string]struct {
		Ordinary string `yaml:"ordinary"`
		Urgent   string `yaml:"urgent"`
	} `yaml:"limits"`
	HandleByClass []struct {
		Kind     string `yaml:"kind"`
		Major    string `yaml:"major"`
		Minor    string `yaml:"minor"`
		Ordinary string `yaml:"ordinary"`
		Urgent   string `yaml:"urgent"`
	} `yaml:"handle_by_class"`
}

// Parse reads a policy file (see config/deadlines/default.yaml). Every
// problem is reported, each naming its key.
func Parse(data []byte) (*Policy, error) {
	var f policyFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("deadline policy: %w", err)
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	spec := calendar.Spec{TimeZone: f.Calendar.TimeZone, Windows: f.Calendar.Windows, Holidays: f.Calendar.Holidays, MakeupDays: f.Calendar.MakeupDays}
	for i, d := range f.Calendar.Workdays {
		wd, ok := weekdays[strings.ToLower(d)]
		if !ok {
			bad(fmt.Sprintf("calendar.workdays[%d]", i), "%q is not a weekday", d)
			continue
		}
		spec.Workdays = append(spec.Workdays, wd)
	}
	p := &Policy{Limits: map[Stage]Limit{}, HandleByClass: map[string]Limit{}}
	cal, err := calendar.New(spec)
	if err != nil {
		bad("calendar", "%v", err)
	}
	p.Calendar = cal
	limit := func(key, ord, urg string) (Limit, bool) {
		var l Limit
		var err error
		if l.Ordinary, err = time.ParseDuration(ord); err != nil || l.Ordinary <= 0 {
			bad(key+".ordinary", "%q is not a positive duration such as 30m or 7h30m", ord)
			return l, false
		}
		if urg != "" {
			if l.Urgent, err = time.ParseDuration(urg); err != nil || l.Urgent <= 0 {
				bad(key+".urgent", "%q is not a positive duration", urg)
				return l, false
			}
		}
		return l, true
	}
	for name, v := range f.Limits {
		st := Stage(name)
		if !isStage(st) {
			bad("limits."+name, "unknown stage (want verify, file, dispatch, handle, check or close)")
			continue
		}
		if l, ok := limit("limits."+name, v.Ordinary, v.Urgent); ok {
			p.Limits[st] = l
		}
	}
	for _, st := range stages {
		if _, ok := p.Limits[st]; !ok {
			bad("limits."+string(st), "required")
		}
	}
	for i, c := range f.HandleByClass {
		key := fmt.Sprintf("handle_by_class[%d]", i)
		kind := pb.Kind_KIND_COMPONENT
		switch c.Kind {
		case "event":
			kind = pb.Kind_KIND_EVENT
		case "component":
		default:
			bad(key+".kind", "%q is not event or component", c.Kind)
			continue
		}
		if len(c.Major) != 2 || (len(c.Minor) != 2 && len(c.Minor) != 3) {
			bad(key, "major must be 2 digits and minor 2 or 3")
			continue
		}
		if l, ok := limit(key, c.Ordinary, c.Urgent); ok {
			k := ClassKey(kind, c.Major, c.Minor)
			if _, dup := p.HandleByClass[k]; dup {
				bad(key, "class %s listed twice", k)
			}
			p.HandleByClass[k] = l
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("deadline policy: %w", errors.Join(errs...))
	}
	return p, nil
}

func isStage(s Stage) bool {
	for _, st := range stages {
		if st == s {
			return true
		}
	}
	return false
}

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}
