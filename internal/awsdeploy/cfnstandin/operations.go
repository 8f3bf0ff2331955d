// The state machine of stack operations: one step per request, events
// as CloudFormation emits them, rollbacks and replacements.

package cfnstandin

import (
	"fmt"
	"strings"
	"time"
)

// live finds a stack that is not deleted by name, or any stack by id.
func (s *Server) live(nameOrID string) *stack {
	for _, st := range s.stacks {
		if st.id == nameOrID {
			return st
		}
		if st.name == nameOrID && st.status != "DELETE_COMPLETE" {
			return st
		}
	}
	return nil
}

func (s *Server) now() time.Time {
	s.clock = s.clock.Add(time.Second)
	return s.clock
}

// tick advances every operation in progress by one step.
func (s *Server) tick() {
	for _, st := range s.stacks {
		if len(st.pending) > 0 {
			step := st.pending[0]
			st.pending = st.pending[1:]
			step()
		}
	}
}

func (s *Server) emit(st *stack, logical, typ, status, reason string) {
	s.emitAs(st, logical, st.physical[logical], typ, status, reason)
}

// emitAs records an event about a given physical resource (the old one of
// a replaced resource).
func (s *Server) emitAs(st *stack, logical, phys, typ, status, reason string) {
	s.seq++
	if logical == st.name {
		phys, typ = st.id, "AWS::CloudFormation::Stack"
	}
	st.events = append(st.events, event{
		id: fmt.Sprintf("%s-%s-%d", logical, status, s.seq), logical: logical, physical: phys,
		typ: typ, status: status, reason: reason, at: s.now(),
	})
}

func (s *Server) setStatus(st *stack, status, reason string) {
	st.status, st.reason = status, reason
	s.emit(st, st.name, "", status, reason)
}

func (s *Server) stepNow(st *stack) {
	if len(st.pending) > 0 {
		step := st.pending[0]
		st.pending = st.pending[1:]
		step()
	}
}

func (s *Server) planCreate(st *stack, cs *changeSet) {
	add := func(f func()) { st.pending = append(st.pending, f) }
	newT := cs.tmpl
	add(func() { s.setStatus(st, "CREATE_IN_PROGRESS", "User Initiated") })
	var created []string
	for i, id := range newT.order {
		r := newT.resources[id]
		if reason, fail := s.Fail[id]; fail {
			// The failing resource starts together with the next one; it
			// fails, the other is cancelled, and the stack rolls back.
			var other string
			if i+1 < len(newT.order) {
				other = newT.order[i+1]
			}
			add(func() {
				s.emit(st, id, r.typ, "CREATE_IN_PROGRESS", "")
				if other != "" {
					s.emit(st, other, newT.resources[other].typ, "CREATE_IN_PROGRESS", "")
				}
			})
			add(func() {
				s.emit(st, id, r.typ, "CREATE_FAILED", reason)
				if other != "" {
					s.emit(st, other, newT.resources[other].typ, "CREATE_FAILED", "Resource creation cancelled")
				}
			})
			add(func() {
				s.setStatus(st, "ROLLBACK_IN_PROGRESS", fmt.Sprintf("The following resource(s) failed to create: [%s]. Rollback requested by user.", id))
			})
			for j := len(created) - 1; j >= 0; j-- {
				c := created[j]
				add(func() { s.emit(st, c, newT.resources[c].typ, "DELETE_IN_PROGRESS", "") })
				add(func() {
					s.emit(st, c, newT.resources[c].typ, "DELETE_COMPLETE", "")
					delete(st.physical, c)
				})
			}
			add(func() {
				st.tmpl, st.params = newT, cs.params
				s.setStatus(st, "ROLLBACK_COMPLETE", "")
			})
			return
		}
		add(func() { s.emit(st, id, r.typ, "CREATE_IN_PROGRESS", "") })
		add(func() {
			s.seq++
			st.physical[id] = fmt.Sprintf("%s-standin-%d", strings.ToLower(id), s.seq)
			s.emit(st, id, r.typ, "CREATE_IN_PROGRESS", "Resource creation Initiated")
			s.emit(st, id, r.typ, "CREATE_COMPLETE", "")
		})
		created = append(created, id)
	}
	add(func() {
		st.tmpl, st.params = newT, cs.params
		st.outputs = s.resolveOutputs(st)
		s.setStatus(st, "CREATE_COMPLETE", "")
	})
}

func (s *Server) planUpdate(st *stack, cs *changeSet) {
	add := func(f func()) { st.pending = append(st.pending, f) }
	oldT, oldParams, newT := st.tmpl, st.params, cs.tmpl
	add(func() { s.setStatus(st, "UPDATE_IN_PROGRESS", "User Initiated") })
	var done []change
	replaced := map[string]string{} // logical id -> the old physical id
	rollback := func(failed string) {
		add(func() {
			s.setStatus(st, "UPDATE_ROLLBACK_IN_PROGRESS", fmt.Sprintf("The following resource(s) failed to update: [%s].", failed))
		})
		for j := len(done) - 1; j >= 0; j-- {
			c := done[j]
			switch c.action {
			case "Modify":
				add(func() { s.emit(st, c.logical, c.typ, "UPDATE_IN_PROGRESS", "") })
				add(func() {
					if old, ok := replaced[c.logical]; ok {
						replaced[c.logical], st.physical[c.logical] = st.physical[c.logical], old
					}
					s.emit(st, c.logical, c.typ, "UPDATE_COMPLETE", "")
				})
			}
		}
		add(func() { s.setStatus(st, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "") })
		for j := len(done) - 1; j >= 0; j-- {
			c := done[j]
			switch {
			case c.action == "Add":
				add(func() { s.emit(st, c.logical, c.typ, "DELETE_IN_PROGRESS", "") })
				add(func() { s.emit(st, c.logical, c.typ, "DELETE_COMPLETE", ""); delete(st.physical, c.logical) })
			case c.replacement == "True":
				// The new resource made for the replacement goes.
				add(func() { s.emitAs(st, c.logical, replaced[c.logical], c.typ, "DELETE_IN_PROGRESS", "") })
				add(func() { s.emitAs(st, c.logical, replaced[c.logical], c.typ, "DELETE_COMPLETE", "") })
			}
		}
		add(func() {
			st.tmpl, st.params = oldT, oldParams
			s.setStatus(st, "UPDATE_ROLLBACK_COMPLETE", "")
		})
	}
	for _, c := range cs.changes {
		if c.action == "Remove" {
			continue
		}
		verb := "UPDATE"
		if c.action == "Add" {
			verb = "CREATE"
		}
		add(func() { s.emit(st, c.logical, c.typ, verb+"_IN_PROGRESS", "") })
		reason, fail := s.Fail[c.logical]
		if c.replacement == "True" && !fail {
			// A replacement makes the new resource before it deletes the
			// old one, so a custom name that stays the same is taken.
			if name, same := s.customName(st, c.typ, oldT.resources[c.logical].props, newT.resources[c.logical].props, cs.params); same {
				reason, fail = fmt.Sprintf("CloudFormation cannot update a stack when a custom-named resource requires replacing. Rename %s and update the stack again.", name), true
			}
		}
		if fail {
			add(func() { s.emit(st, c.logical, c.typ, verb+"_FAILED", reason) })
			rollback(c.logical)
			return
		}
		add(func() {
			switch {
			case c.action == "Add":
				s.seq++
				st.physical[c.logical] = fmt.Sprintf("%s-standin-%d", strings.ToLower(c.logical), s.seq)
			case c.replacement == "True":
				s.seq++
				replaced[c.logical] = st.physical[c.logical]
				st.physical[c.logical] = fmt.Sprintf("%s-standin-%d", strings.ToLower(c.logical), s.seq)
				s.emit(st, c.logical, c.typ, verb+"_IN_PROGRESS", "Requested update requires the creation of a new physical resource; hence creating one.")
			}
			s.emit(st, c.logical, c.typ, verb+"_COMPLETE", "")
		})
		done = append(done, c)
	}
	add(func() {
		st.tmpl, st.params = newT, cs.params
		st.outputs = s.resolveOutputs(st)
		s.setStatus(st, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "")
	})
	for _, c := range cs.changes {
		switch {
		case c.action == "Remove":
			add(func() { s.emit(st, c.logical, c.typ, "DELETE_IN_PROGRESS", "") })
			add(func() { s.emit(st, c.logical, c.typ, "DELETE_COMPLETE", ""); delete(st.physical, c.logical) })
		case c.replacement == "True":
			// The old resource of a replacement goes in the cleanup.
			add(func() { s.emitAs(st, c.logical, replaced[c.logical], c.typ, "DELETE_IN_PROGRESS", "") })
			add(func() { s.emitAs(st, c.logical, replaced[c.logical], c.typ, "DELETE_COMPLETE", "") })
		}
	}
	add(func() { s.setStatus(st, "UPDATE_COMPLETE", "") })
}
