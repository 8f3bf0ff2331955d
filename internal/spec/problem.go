package spec

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/moat-dev/moat/internal/suggest"
)

// Position is a place in a stack file.
type Position struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Severity of a problem: errors stop moat; warnings are printed.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Problem is one finding about a stack file: what, where, and how to fix it.
type Problem struct {
	Severity Severity `json:"severity"`
	Pos      Position `json:"position"`
	// Path is the field path, e.g. vpc.subnets[1].cidr.
	Path    string `json:"path"`
	Message string `json:"message"`
	// Hint says how to fix it.
	Hint string `json:"hint,omitempty"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Pos.String())
	b.WriteString(": ")
	if p.Severity == Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString("\n    fix: ")
		b.WriteString(p.Hint)
	}
	return b.String()
}

// Problems is a list of findings; as an error it reports every error.
type Problems []Problem

// Errors returns only the problems of severity Error.
func (ps Problems) Errors() Problems { return ps.only(Error) }

// Warnings returns only the problems of severity Warning.
func (ps Problems) Warnings() Problems { return ps.only(Warning) }

func (ps Problems) only(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Sort orders problems by position, then path.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Pos, ps[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return ps[i].Path < ps[j].Path
	})
}

func (ps Problems) Error() string {
	errs := ps.Errors()
	lines := make([]string, 0, len(errs)+1)
	n := len(errs)
	if n == 1 {
		lines = append(lines, "the stack file has 1 error:")
	} else {
		lines = append(lines, fmt.Sprintf("the stack file has %d errors:", n))
	}
	for _, p := range errs {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// didYouMean formats a hint suggesting the closest candidate, or listing
// the candidates when none is close.
func didYouMean(s string, candidates []string, what string) string {
	if c := suggest.Closest(s, candidates); c != "" {
		return fmt.Sprintf("did you mean %q?", c)
	}
	if len(candidates) == 0 {
		return fmt.Sprintf("define a %s first", what)
	}
	var unique []string // in file order; a name defined twice is listed once
	for _, c := range candidates {
		if !slices.Contains(unique, c) {
			unique = append(unique, c)
		}
	}
	candidates = unique
	if len(candidates) > 12 {
		candidates = candidates[:12]
	}
	return fmt.Sprintf("use one of the defined %ss: %s", what, strings.Join(candidates, ", "))
}
