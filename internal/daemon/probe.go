package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/moat-dev/moat/internal/api"
	"github.com/moat-dev/moat/internal/secgroup"
	"github.com/moat-dev/moat/internal/vpc"
)

// internet names the VPC's internet side in probes, as moat reach does.
const internet = "internet"

// handleProbe opens a real TCP connection from a node's namespace (or the
// internet's) to another node (or the internet's address) for moat reach
// --probe, and says what the kernel did. Only the stack's own namespaces
// and addresses are involved.
func (s *stack) handleProbe(w http.ResponseWriter, r *http.Request) {
	var req api.ProbeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("probe request: %w", err))
		return
	}
	n := s.network()
	if n == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("the VPC is not up yet"))
		return
	}
	if req.Port < 1 || req.Port > 65535 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("probe port %d: want 1 to 65535", req.Port))
		return
	}
	timeout := time.Second
	if req.TimeoutMillis > 0 {
		timeout = min(time.Duration(req.TimeoutMillis)*time.Millisecond, 10*time.Second)
	}
	var from string
	if req.From == internet {
		from = n.InternetPath()
	} else if node, ok := n.Node(req.From); ok {
		from = node.NSPath
	} else {
		writeError(w, http.StatusNotFound, fmt.Errorf("probe from %s: no such node in the running stack (see moat ps; or internet)", req.From))
		return
	}
	var to netip.Addr
	if req.To == internet {
		to = secgroup.InternetAddr
	} else if node, ok := n.Node(req.To); ok {
		to = node.Addr
	} else {
		writeError(w, http.StatusNotFound, fmt.Errorf("probe to %s: no such node in the running stack (see moat ps; or internet)", req.To))
		return
	}
	res, err := vpc.Probe(r.Context(), from, netip.AddrPortFrom(to, uint16(req.Port)), timeout)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, api.ProbeResult{Reached: res.Reached, Outcome: res.Outcome})
}
