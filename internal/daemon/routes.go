package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/sshconfig"
)

// stackHandlers answer the stack's routes of the control API.
var stackHandlers = map[api.Route]func(*stack, http.ResponseWriter, *http.Request){
	api.GetInstances: func(s *stack, w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.instances(r.URL.Query().Get("all") == "1"))
	},
	api.GetTargets: func(s *stack, w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.targets())
	},
	api.PostScale: func(s *stack, w http.ResponseWriter, r *http.Request) {
		g := s.group(r.PathValue("name"))
		if g == nil {
			writeError(w, http.StatusNotFound, s.noGroup(r.PathValue("name")))
			return
		}
		var req api.ScaleRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if err := g.setDesired(req.Desired); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%w; to go outside that range, change the group's minSize or maxSize in the stack file and run moat up", err))
			return
		}
		writeJSON(w, http.StatusOK, api.ScaleRequest{Desired: req.Desired})
	},
	api.PostRefresh: func(s *stack, w http.ResponseWriter, r *http.Request) {
		g := s.group(r.PathValue("name"))
		if g == nil {
			writeError(w, http.StatusNotFound, s.noGroup(r.PathValue("name")))
			return
		}
		if err := g.startRefresh(); err != nil {
			writeError(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, http.StatusAccepted, api.Accepted{Status: "refreshing"})
	},
	api.GetActivities: func(s *stack, w http.ResponseWriter, r *http.Request) {
		g := s.group(r.PathValue("name"))
		if g == nil {
			writeError(w, http.StatusNotFound, s.noGroup(r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, g.activities())
	},
	api.PostTerminate: func(s *stack, w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var req api.TerminateRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		for _, g := range s.groupMap() {
			if g.has(id) {
				if err := g.terminateInstance(id, req.DecrementDesired); err != nil {
					writeError(w, http.StatusBadRequest, err)
					return
				}
				writeJSON(w, http.StatusAccepted, api.Accepted{Status: "terminating"})
				return
			}
		}
		writeError(w, http.StatusNotFound, fmt.Errorf("instance %s is not in any auto scaling group: give an instance id or index from moat ps", id))
	},
	api.PostProtection: func(s *stack, w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var req api.ProtectionRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		for _, g := range s.groupMap() {
			if g.has(id) {
				if err := g.setProtection(id, req.ProtectedFromScaleIn); err != nil {
					writeError(w, http.StatusBadRequest, err)
					return
				}
				writeJSON(w, http.StatusOK, req)
				return
			}
		}
		writeError(w, http.StatusNotFound, fmt.Errorf("instance %s is not in any auto scaling group: give an instance id or index from moat ps", id))
	},
	api.GetLogs:   (*stack).handleLogs,
	api.PostProbe: (*stack).handleProbe,
	api.PostApply: (*stack).handleApply,
	api.GetMembership: func(s *stack, w http.ResponseWriter, r *http.Request) {
		n := s.network()
		if n == nil {
			writeError(w, http.StatusServiceUnavailable, errors.New("the VPC is not up yet"))
			return
		}
		writeJSON(w, http.StatusOK, n.Membership())
	},
	api.GetSSHAccess: func(s *stack, w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.sshAccess())
	},
	api.PostFault: func(s *stack, w http.ResponseWriter, r *http.Request) {
		var req api.FaultRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("read fault request: %w", err))
			return
		}
		f, err := s.faults.start(r.Context(), req)
		if err != nil {
			writeError(w, faultStatus(err), err)
			return
		}
		writeJSON(w, http.StatusCreated, f)
	},
	api.GetFaults: func(s *stack, w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.faults.list())
	},
	api.DeleteFault: func(s *stack, w http.ResponseWriter, r *http.Request) {
		f, err := s.faults.stop(r.PathValue("id"), "stopped through the API")
		if err != nil {
			writeError(w, faultStatus(err), err)
			return
		}
		writeJSON(w, http.StatusOK, f)
	},
	api.GetMetrics: (*stack).handleMetrics,
}

// noGroup is the error for an auto scaling group name the stack does not
// have; it names the ones it has.
func (s *stack) noGroup(name string) error {
	groups := s.groupMap()
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	if len(names) == 0 {
		return fmt.Errorf("auto scaling group %q does not exist: the stack has no auto scaling groups", name)
	}
	sort.Strings(names)
	return fmt.Errorf("auto scaling group %q does not exist: the stack's groups are %s", name, strings.Join(names, ", "))
}

func (s *stack) instances(all bool) []api.Instance {
	out := []api.Instance{}
	for _, g := range s.plan.AutoScalingGroups {
		if rt := s.group(g.Name); rt != nil {
			out = append(out, rt.instances(all)...)
		}
	}
	return out
}

// targetInstanceIDs names the instances' targets: instance id by target
// address (ip:port of each target group the instance's group registers
// it in).
func (s *stack) targetInstanceIDs() map[string]string {
	ids := map[string]string{}
	for _, inst := range s.instances(false) {
		for _, g := range s.plan.AutoScalingGroups {
			if g.Name != inst.Group {
				continue
			}
			for _, name := range g.TargetGroups {
				if tg, ok := s.plan.TargetGroup(name); ok {
					ids[inst.IP+":"+strconv.Itoa(tg.Port)] = inst.ID
				}
			}
		}
	}
	return ids
}

// targets lists every target of every load balancer's target groups,
// naming instances by id.
func (s *stack) targets() []api.Target {
	ids := s.targetInstanceIDs()
	out := []api.Target{}
	for _, l := range s.plan.LoadBalancers {
		b := s.balancer(l.Name)
		if b == nil {
			continue
		}
		for _, tg := range lbConfig(s.current(), l).TargetGroups {
			for _, t := range b.engine.Targets(tg.Name) {
				id := ids[t.Addr]
				if id == "" {
					id = t.ID
				}
				at := api.Target{TargetGroup: tg.Name, ID: id, Address: t.Addr, State: string(t.State),
					Reason: t.Reason, Description: t.Description}
				for _, c := range t.Checks {
					at.Checks = append(at.Checks, api.HealthCheck{Time: c.Time, OK: c.OK, Reason: c.Reason, Detail: c.Detail,
						LatencyMS: float64(c.Latency.Microseconds()) / 1000})
				}
				out = append(out, at)
			}
		}
	}
	return out
}

func (s *stack) logPath(id string) string { return s.dir.Path("instances", id, "console.log") }

// handleLogs streams an instance's console log; with ?follow=1 it keeps
// streaming until the client goes away.
func (s *stack) handleLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f, err := os.Open(s.logPath(id))
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("no logs for instance %s: give an instance id or index from moat ps", id))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	flusher, _ := w.(http.Flusher)
	rd := bufio.NewReader(f)
	follow := r.URL.Query().Get("follow") == "1"
	for {
		line, err := rd.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			if !follow {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return
		}
	}
}

// sshAccess is what moat ssh needs: the bastion, its user and key pair,
// known_hosts lines, and every instance with an SSH endpoint.
func (s *stack) sshAccess() sshconfig.Access {
	a := sshconfig.Access{Stack: s.plan.Stack, KnownHosts: []string{}, Instances: []sshconfig.AccessInstance{}}
	if b := s.plan.Bastion; b != nil {
		a.Bastion, a.BastionUser, a.KeyPair = b.Publish, b.User, b.KeyPair
	}
	s.mu.Lock()
	if s.bastionHostKey != "" {
		a.KnownHosts = append(a.KnownHosts, s.bastionHostKey)
	}
	for _, line := range s.hostKeys {
		a.KnownHosts = append(a.KnownHosts, line)
	}
	s.mu.Unlock()
	sort.Strings(a.KnownHosts)
	for _, inst := range s.instances(false) {
		g := s.group(inst.Group)
		if g == nil || inst.State != stateRunning {
			continue
		}
		lt := g.launchTemplate()
		if lt.KeyPair == "" {
			continue
		}
		ip, err := netip.ParseAddr(inst.IP)
		if err != nil {
			continue
		}
		a.Instances = append(a.Instances, sshconfig.AccessInstance{ID: inst.ID, Group: inst.Group, IP: ip, User: lt.User, KeyPair: lt.KeyPair})
	}
	return a
}
