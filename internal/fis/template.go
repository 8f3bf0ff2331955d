// Package fis reads AWS Fault Injection Service experiment templates as
// AWS writes them (the JSON of aws fis create-experiment-template
// --cli-input-json), checks them against what FIS accepts and what moat
// can run, resolves their targets against a stack's resources and orders
// their actions into a schedule. Everything here is pure: the effects of
// an experiment are the executor's (Run), through a small interface.
package fis

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/moat-dev/moat/internal/spec"
)

// Template is an experiment template, with AWS's field names.
type Template struct {
	Description       string             `yaml:"description" json:"description,omitempty"`
	Targets           map[string]Target  `yaml:"targets" json:"targets,omitempty"`
	Actions           map[string]Action  `yaml:"actions" json:"actions"`
	StopConditions    []StopCondition    `yaml:"stopConditions" json:"stopConditions"`
	RoleArn           string             `yaml:"roleArn" json:"roleArn,omitempty"`
	Tags              map[string]string  `yaml:"tags" json:"tags,omitempty"`
	ExperimentOptions *ExperimentOptions `yaml:"experimentOptions" json:"experimentOptions,omitempty"`
	LogConfiguration  map[string]any     `yaml:"logConfiguration" json:"logConfiguration,omitempty"`
	ReportConfig      map[string]any     `yaml:"experimentReportConfiguration" json:"experimentReportConfiguration,omitempty"`
	ClientToken       string             `yaml:"clientToken" json:"clientToken,omitempty"`
}

// Target is a set of resources an action acts on.
type Target struct {
	ResourceType  string            `yaml:"resourceType" json:"resourceType"`
	ResourceArns  []string          `yaml:"resourceArns" json:"resourceArns,omitempty"`
	ResourceTags  map[string]string `yaml:"resourceTags" json:"resourceTags,omitempty"`
	Filters       []Filter          `yaml:"filters" json:"filters,omitempty"`
	SelectionMode string            `yaml:"selectionMode" json:"selectionMode"`
	Parameters    map[string]string `yaml:"parameters" json:"parameters,omitempty"`
}

// Filter narrows a target by an attribute path (as DescribeInstances
// returns it, e.g. Placement.AvailabilityZone); any of Values matches.
type Filter struct {
	Path   string   `yaml:"path" json:"path"`
	Values []string `yaml:"values" json:"values"`
}

// Action is one fault injection activity.
type Action struct {
	ActionID    string            `yaml:"actionId" json:"actionId"`
	Description string            `yaml:"description" json:"description,omitempty"`
	Parameters  map[string]string `yaml:"parameters" json:"parameters,omitempty"`
	// Targets maps the action's target key (Instances, Subnets,
	// AutoScalingGroups) to a target name.
	Targets    map[string]string `yaml:"targets" json:"targets,omitempty"`
	StartAfter []string          `yaml:"startAfter" json:"startAfter,omitempty"`
}

// StopCondition stops the experiment when an alarm fires.
type StopCondition struct {
	Source string `yaml:"source" json:"source"`
	Value  string `yaml:"value" json:"value,omitempty"`
}

// ExperimentOptions of a template.
type ExperimentOptions struct {
	AccountTargeting          string `yaml:"accountTargeting" json:"accountTargeting,omitempty"`
	EmptyTargetResolutionMode string `yaml:"emptyTargetResolutionMode" json:"emptyTargetResolutionMode,omitempty"`
	ActionsMode               string `yaml:"actionsMode" json:"actionsMode,omitempty"`
}

// File is a loaded template with the position of each field, for errors.
type File struct {
	Path     string
	Template Template
	pos      map[string]spec.Position
}

// Pos is the position of a field path such as actions.stop.actionId, or
// of its nearest written parent.
func (f *File) Pos(path string) spec.Position {
	for {
		if p, ok := f.pos[path]; ok {
			return p
		}
		if path == "" {
			return spec.Position{File: f.Path}
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

// order returns map keys in the order they are written in the file.
func (f *File) order(prefix string, keys []string) []string {
	out := slices.Clone(keys)
	slices.SortStableFunc(out, func(a, b string) int {
		pa, pb := f.Pos(join(prefix, a)), f.Pos(join(prefix, b))
		if pa.Line != pb.Line {
			return pa.Line - pb.Line
		}
		if pa.Column != pb.Column {
			return pa.Column - pb.Column
		}
		return strings.Compare(a, b)
	})
	return out
}

// ActionNames are the template's actions in file order.
func (f *File) ActionNames() []string {
	return f.order("actions", mapKeys(f.Template.Actions))
}

// TargetNames are the template's targets in file order.
func (f *File) TargetNames() []string {
	return f.order("targets", mapKeys(f.Template.Targets))
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Problems are what is wrong with a template; as an error they list every
// error with where and how to fix it.
type Problems spec.Problems

func (ps Problems) Error() string {
	errs := spec.Problems(ps).Errors()
	lines := []string{fmt.Sprintf("the experiment template has %d error(s):", len(errs))}
	for _, p := range errs {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// Errors are the problems of severity error.
func (ps Problems) Errors() Problems { return Problems(spec.Problems(ps).Errors()) }

// Warnings are the problems of severity warning.
func (ps Problems) Warnings() Problems { return Problems(spec.Problems(ps).Warnings()) }

// LoadFile reads and parses a template file; see Parse.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read experiment template: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a template (JSON as AWS writes it; YAML is read too). Syntax
// and shape problems (unknown fields, wrong kinds) come back as Problems;
// Validate checks the rest.
func Parse(name string, data []byte) (*File, error) {
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "[") {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, Problems{jsonProblem(name, data, err)}
		}
		if _, ok := v.(map[string]any); !ok {
			return nil, Problems{{Severity: spec.Error, Pos: spec.Position{File: name, Line: 1, Column: 1},
				Message: "an experiment template is a JSON object", Hint: `write {"targets": {...}, "actions": {...}, "stopConditions": [...]}`}}
		}
	}
	f := &File{Path: name}
	pos, err := spec.Decode(name, data, &f.Template, "the experiment template")
	if err != nil {
		var ps spec.Problems
		if errors.As(err, &ps) {
			return nil, Problems(ps)
		}
		return nil, err
	}
	f.pos = pos
	return f, nil
}

// jsonProblem places a JSON syntax error at its line and column.
func jsonProblem(name string, data []byte, err error) spec.Problem {
	off := int64(len(data))
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	line, col := 1, 1
	for i := int64(0); i < off-1 && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return spec.Problem{Severity: spec.Error, Pos: spec.Position{File: name, Line: line, Column: col},
		Message: "invalid JSON: " + err.Error(), Hint: "check the commas, quotes and brackets before this point"}
}
