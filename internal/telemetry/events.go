package telemetry

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/events"
	"github.com/moat-dev/moat/internal/targetgroup"
)

// TargetHealthEvent is the timeline's event of a target's change of
// health state (type target.health), naming the target by id (an
// instance id where the target is one) and by address, with AWS's state
// and reason code.
func TargetHealthEvent(lb, tg, id string, tr targetgroup.Transition) events.Event {
	t := tr.Target
	if id == "" {
		id = t.ID
	}
	why := ""
	switch {
	case t.Reason != "" && t.Description != "":
		why = " (" + t.Reason + ": " + t.Description + ")"
	case t.Reason != "":
		why = " (" + t.Reason + ")"
	}
	return events.Event{Component: "lb", Type: "target.health",
		Message: fmt.Sprintf("Target %s (%s) of target group %s: %s -> %s%s", id, t.Addr, tg, tr.From, t.State, why),
		Fields: map[string]string{"lb": lb, "targetGroup": tg, "target": id, "addr": t.Addr,
			"from": string(tr.From), "to": string(t.State), "reason": t.Reason}}
}

// Errors5XXEvents are the timeline's events of a sample: one lb.5xx per
// load balancer that answered 5xx in that second, with the count, by
// source and by target.
func Errors5XXEvents(s api.MetricsSample) []events.Event {
	var out []events.Event
	for _, l := range s.LoadBalancers {
		n := l.HTTPCode_Target_5XX_Count + l.HTTPCode_ELB_5XX_Count
		if n == 0 {
			continue
		}
		fields := map[string]string{"lb": l.Name, "count": strconv.FormatUint(n, 10),
			"target5xx": strconv.FormatUint(l.HTTPCode_Target_5XX_Count, 10), "elb5xx": strconv.FormatUint(l.HTTPCode_ELB_5XX_Count, 10)}
		var parts []string
		var byTarget uint64
		targets := append([]api.TargetMetrics(nil), l.Targets...)
		sort.SliceStable(targets, func(i, j int) bool { return targets[i].Errors5XX > targets[j].Errors5XX })
		for _, t := range targets {
			if t.Errors5XX == 0 {
				continue
			}
			byTarget += t.Errors5XX
			fields["target."+t.ID] = strconv.FormatUint(t.Errors5XX, 10)
			parts = append(parts, fmt.Sprintf("%s %d", t.ID, t.Errors5XX))
		}
		if rest := n - min(n, byTarget); rest > 0 {
			parts = append(parts, fmt.Sprintf("no target %d", rest))
		}
		out = append(out, events.Event{Time: s.Time, Component: "lb", Type: "lb.5xx", Fields: fields,
			Message: fmt.Sprintf("Load balancer %s answered %d 5XX in the second to %s (%d from targets, %d its own): %s",
				l.Name, n, s.Time.Format("15:04:05"), l.HTTPCode_Target_5XX_Count, l.HTTPCode_ELB_5XX_Count, strings.Join(parts, ", "))})
	}
	return out
}
