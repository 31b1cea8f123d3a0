package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// walk reports, files and dispatches one case at the reporting node, waits
// for its holder to have it and takes it to closure there.
func (d *driver) walk(ctx context.Context, r *caseRun) error {
	rid := func(step string) string {
		id := fmt.Sprintf("%s-%04d-%s", d.o.runID, r.n, step)
		r.rids = append(r.rids, id)
		return id
	}
	rep := r.reporter
	r.reported = time.Now()
	var c *pb.Case
	reportID := rid("report")
	err := d.do(ctx, rep, func(ctx context.Context, cl pb.CaseServiceClient) error {
		resp, err := cl.ReportCase(ctx, &pb.ReportCaseRequest{
			RequestId: reportID, Actor: "insp-fed", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: d.o.grid,
			Description: fmt.Sprintf("暴露垃圾 federation e2e case %d", r.n),
		})
		if err == nil {
			c = resp.Case
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	r.id = c.Id
	d.lmu.Lock()
	d.live = append(d.live, liveCase{id: c.Id, r: r})
	d.lmu.Unlock()
	if c.Holder != rep.name {
		return fmt.Errorf("reported at %s, but holder is %q", rep.name, c.Holder)
	}
	if _, err := d.act(ctx, rep, r, rid("file"), pb.Action_ACTION_FILE, pb.Role_ROLE_SHIFT_LEADER, nil); err != nil {
		return err
	}
	unit := d.o.units[r.holder.name]
	disp, err := d.act(ctx, rep, r, rid("dispatch"), pb.Action_ACTION_DISPATCH, pb.Role_ROLE_DISPATCHER, func(a *pb.ActRequest) {
		a.Unit, a.TimeLimitMinutes = unit, 240
	})
	if err != nil {
		return err
	}
	wantEpoch := uint64(1)
	if r.holder != rep {
		wantEpoch = 2
	}
	if disp.Holder != r.holder.name || disp.HolderEpoch != wantEpoch {
		return fmt.Errorf("dispatch to %s: holder %q epoch %d, want %s %d", unit, disp.Holder, disp.HolderEpoch, r.holder.name, wantEpoch)
	}
	if r.holder != rep {
		if err := d.waitHolder(ctx, r); err != nil {
			return err
		}
	}
	h := r.holder
	steps := []struct {
		step string
		a    pb.Action
		role pb.Role
	}{
		{"accept", pb.Action_ACTION_ACCEPT, pb.Role_ROLE_HANDLING_UNIT},
		{"handle", pb.Action_ACTION_HANDLE, pb.Role_ROLE_HANDLING_UNIT},
		{"checkpass", pb.Action_ACTION_CHECK_PASS, pb.Role_ROLE_INSPECTOR},
		{"close", pb.Action_ACTION_CLOSE, pb.Role_ROLE_SHIFT_LEADER},
	}
	for _, s := range steps {
		if c, err = d.act(ctx, h, r, rid(s.step), s.a, s.role, nil); err != nil {
			return err
		}
	}
	r.closed = time.Now()
	c.AllowedActions, c.WorkingTimeLeft = nil, nil // computed on read
	r.final = c
	return nil
}

func (d *driver) act(ctx context.Context, g *group, r *caseRun, rid string, a pb.Action, role pb.Role, mod func(*pb.ActRequest)) (*pb.Case, error) {
	var out *pb.Case
	err := d.do(ctx, g, func(ctx context.Context, cl pb.CaseServiceClient) error {
		req := &pb.ActRequest{CaseId: r.id, RequestId: rid, Action: a, Actor: "fed-" + strings.ToLower(role.String()), Role: role, Note: "e2e"}
		if role == pb.Role_ROLE_HANDLING_UNIT {
			// The unit the case was dispatched to (its seat's credentials).
			req.Actor = d.o.units[r.holder.name]
		}
		if mod != nil {
			mod(req)
		}
		resp, err := cl.Act(ctx, req)
		if err == nil {
			out = resp.Case
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s at %s: %w", a, g.name, err)
	}
	return out, nil
}

// waitHolder waits until the holder's group has the case with itself as
// holder (a linearizable read, so its leader has applied the hand-off).
func (d *driver) waitHolder(ctx context.Context, r *caseRun) error {
	for {
		var c *pb.Case
		err := d.do(ctx, r.holder, func(ctx context.Context, cl pb.CaseServiceClient) error {
			var err error
			c, err = cl.GetCase(ctx, &pb.GetCaseRequest{CaseId: r.id, Consistency: pb.Consistency_CONSISTENCY_LINEARIZABLE})
			return err
		})
		switch {
		case err == nil && c.Holder == r.holder.name:
			return nil
		case err == nil, status.Code(err) == codes.NotFound:
		default:
			return fmt.Errorf("wait for %s to hold it: %w", r.holder.name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never held it: %w", r.holder.name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
