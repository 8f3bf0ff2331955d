package awsdeploy

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress is the live view of a stack operation, after AWS Copilot's: one
// line per resource, in the order resources first appear, each showing the
// resource's latest status. On a terminal the resources in progress (and
// the stack) are redrawn in place at the bottom as their statuses change,
// and a resource that settles (complete or failed) moves up into the
// scrollback as a permanent line, so the live part stays short whatever
// the stack's size. Elsewhere (logs, CI, pipes) every status change is one
// plain line.
type Progress struct {
	w     io.Writer
	tty   bool
	color bool
	stack string
	// NameWidth is the width of the logical id column (default 34; Deploy
	// sets it to the longest id in the change set).
	NameWidth int
	// Width and Height are the terminal's size (0: unknown); lines are cut
	// to Width and the live part to Height-1 lines so that redrawing never
	// scrolls.
	Width, Height int

	rows  []*progressRow
	index map[string]*progressRow
	drawn int // lines drawn by the last redraw (TTY only)
	start time.Time
}

// statusWidth fits the common statuses with a duration
// ("UPDATE_ROLLBACK_COMPLETE 1m20s").
const statusWidth = 30

type progressRow struct {
	logicalID, typ, status, reason string
	phase, last                    time.Time // start of the current operation on it, latest event
	settled                        bool      // printed into the scrollback in its current status (TTY)
}

// NewProgress writes the view for stack to w; tty selects in-place redraws,
// color adds colours (pass false when NO_COLOR is set).
func NewProgress(w io.Writer, stack string, tty, color bool) *Progress {
	return &Progress{w: w, tty: tty, color: color && tty, stack: stack, index: map[string]*progressRow{}, NameWidth: 34}
}

// Add records an event and updates the view.
func (p *Progress) Add(e Event) {
	if p.start.IsZero() {
		p.start = e.Time
	}
	r, ok := p.index[e.LogicalID]
	if !ok {
		r = &progressRow{logicalID: e.LogicalID, typ: e.Type, phase: e.Time}
		p.index[e.LogicalID] = r
		p.rows = append(p.rows, r)
	}
	changed := r.status != e.Status || r.reason != e.Reason
	if changed {
		r.settled = false
	}
	if strings.HasSuffix(e.Status, "_IN_PROGRESS") && !strings.HasSuffix(r.status, "_IN_PROGRESS") {
		r.phase = e.Time // a new operation on the resource (create, update, delete)
	}
	r.status, r.reason, r.last = e.Status, e.Reason, e.Time
	if e.Type != "" {
		r.typ = e.Type
	}
	if !p.tty {
		if changed {
			fmt.Fprintln(p.w, p.plainLine(e))
		}
		return
	}
	p.redraw()
}

// Lines returns the view as it stands, one line per resource (no colour).
func (p *Progress) Lines() []string {
	var out []string
	for _, r := range p.rows {
		out = append(out, p.rowLine(r, false))
	}
	return out
}

func (p *Progress) plainLine(e Event) string {
	s := fmt.Sprintf("%s  %-*s %-*s %s", e.Time.UTC().Format("15:04:05"), p.NameWidth, e.LogicalID, statusWidth, e.Status, e.Type)
	if e.Reason != "" {
		s += "  " + e.Reason
	}
	return s
}

// symbol is the mark in front of a row: ✘ failed or rolled back, - in
// progress, ✔ done.
func symbol(status string) string {
	switch {
	case strings.HasSuffix(status, "_FAILED"), RolledBack(status):
		return "✘"
	case strings.HasSuffix(status, "_IN_PROGRESS"):
		return "-"
	case strings.HasSuffix(status, "_COMPLETE"):
		return "✔"
	}
	return " "
}

func (p *Progress) rowLine(r *progressRow, color bool) string {
	name := r.logicalID
	indent := "  "
	if r.logicalID == p.stack {
		name, indent = "stack "+r.logicalID, ""
	}
	elapsed := ""
	if d := r.last.Sub(r.phase); d > 0 && !strings.HasSuffix(r.status, "_IN_PROGRESS") {
		elapsed = " " + d.Round(time.Second).String()
	}
	// The type comes last: on a narrow terminal it is what gets cut.
	s := fmt.Sprintf("%s%s %-*s %-*s %s", indent, symbol(r.status), p.NameWidth-len(indent)+2, name, statusWidth, r.status+elapsed, r.typ)
	if strings.HasSuffix(r.status, "_FAILED") && r.reason != "" {
		s += "\n" + indent + "    " + r.reason
	}
	if color {
		switch {
		case strings.HasSuffix(r.status, "_FAILED"), RolledBack(r.status):
			s = "\x1b[31m" + s + "\x1b[0m"
		case strings.HasSuffix(r.status, "_IN_PROGRESS"):
			s = "\x1b[33m" + s + "\x1b[0m"
		case strings.HasSuffix(r.status, "_COMPLETE"):
			s = "\x1b[32m" + s + "\x1b[0m"
		}
	}
	return s
}

// redraw moves the cursor back over the live part, prints the rows that
// settled since into the scrollback, and draws the live part again: the
// stack's row and every resource still in progress.
func (p *Progress) redraw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dF\x1b[J", p.drawn) // to the start of the live part; clear to the end of the screen
	}
	var live []*progressRow
	for _, r := range p.rows {
		switch {
		case r.logicalID == p.stack || strings.HasSuffix(r.status, "_IN_PROGRESS"):
			live = append(live, r)
		case !r.settled:
			r.settled = true
			for _, line := range strings.Split(p.rowLine(r, p.color), "\n") {
				b.WriteString(p.cut(line))
				b.WriteString("\n")
			}
		}
	}
	var lines []string
	for _, r := range live {
		lines = append(lines, strings.Split(p.rowLine(r, p.color), "\n")...)
	}
	if p.Height > 2 && len(lines) > p.Height-1 {
		more := len(lines) - (p.Height - 2)
		lines = append(lines[:p.Height-2], fmt.Sprintf("  … and %d more lines in progress", more))
	}
	for _, line := range lines {
		b.WriteString(p.cut(line))
		b.WriteString("\n")
	}
	p.drawn = len(lines)
	io.WriteString(p.w, b.String())
}

// cut shortens a line to the terminal's width (counting runes; colour
// escapes are kept whole at the start and the reset re-added at the end).
func (p *Progress) cut(line string) string {
	if p.Width <= 0 {
		return line
	}
	prefix, body, suffix := "", line, ""
	if strings.HasPrefix(body, "\x1b[") {
		if i := strings.IndexByte(body, 'm'); i > 0 {
			prefix, body = body[:i+1], body[i+1:]
		}
	}
	if strings.HasSuffix(body, "\x1b[0m") {
		body, suffix = strings.TrimSuffix(body, "\x1b[0m"), "\x1b[0m"
	}
	r := []rune(body)
	if len(r) >= p.Width {
		body = string(r[:p.Width-1])
		if suffix == "" && prefix != "" {
			suffix = "\x1b[0m"
		}
	}
	return prefix + body + suffix
}
