package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/moat-dev/moat/internal/suggest"
)

// File is a loaded stack file: the stack, where it came from, and the
// position of every field that was written, for error messages.
type File struct {
	Path  string
	Dir   string // directory the file's relative paths are resolved against
	Stack Stack
	pos   map[string]Position
	// parseProblems are shape problems that did not stop decoding
	// (unknown fields); Validate reports them.
	parseProblems Problems
}

// Pos returns the position of a field path such as vpc.subnets[1].cidr.
// For a field that was not written it returns the nearest written parent.
func (f *File) Pos(path string) Position {
	for {
		if p, ok := f.pos[path]; ok {
			return p
		}
		if path == "" {
			return Position{File: f.Path}
		}
		path = parentPath(path)
	}
}

func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// LoadFile reads and parses a stack file. Syntax and shape problems (bad
// YAML, unknown fields, wrong types) come back as Problems; it does not
// validate references or apply defaults (see Validate and Defaults).
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read stack file: %w", err)
	}
	f, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err == nil {
		f.Dir = abs
	}
	return f, nil
}

// Parse parses stack file content; name is used in positions.
func Parse(name string, data []byte) (*File, error) {
	f := &File{Path: name, Dir: filepath.Dir(name)}
	pos, unknown, err := decode(name, data, &f.Stack, "the stack file", "start from the example: moat init")
	if err != nil {
		return nil, err
	}
	f.pos = pos
	// Unknown fields do not stop decoding: Validate reports them with
	// everything else, so the user sees every problem at once.
	f.parseProblems = unknown
	return f, nil
}

// Decode parses a YAML document (or JSON, which YAML reads too) into v,
// checking its shape against v's type as stack files are checked: unknown
// fields with a did-you-mean, wrong kinds, scalars that do not parse, keys
// set twice. what names the document in messages ("the experiment
// template"). It returns the position of every field path written
// (a.b[1].c); shape problems come back as Problems, and v is filled only
// when there are none.
func Decode(name string, data []byte, v any, what string) (map[string]Position, error) {
	pos, problems, err := decode(name, data, v, what, "")
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return pos, nil
}

// decode is Parse and Decode: problems that stop decoding come back as
// err; shape problems that do not (unknown fields) as problems.
func decode(name string, data []byte, v any, what, emptyHint string) (pos map[string]Position, problems Problems, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, Problems{{Severity: Error, Pos: Position{File: name, Line: 1, Column: 1},
				Message: what + " is empty", Hint: emptyHint}}
		}
		return nil, nil, Problems{yamlProblem(name, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, Problems{{Severity: Error, Pos: Position{File: name, Line: extra.Line, Column: extra.Column},
			Message: "the file holds more than one YAML document", Hint: "remove the second document (after ---)"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w := walker{file: name, pos: map[string]Position{}}
	w.walk(root, reflect.TypeOf(v).Elem(), "")
	w.problems.Sort()
	if err := root.Decode(v); err != nil {
		// Shape problems (wrong kinds) explain decode failures better.
		if len(w.problems) > 0 {
			return nil, nil, w.problems
		}
		return nil, nil, Problems{yamlProblem(name, err)}
	}
	return w.pos, w.problems, nil
}

// yamlProblem turns a YAML library error ("yaml: line 3: ...") into a Problem.
func yamlProblem(name string, err error) Problem {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, tail, ok := strings.Cut(rest, ":"); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, strings.TrimSpace(tail)
			}
		}
	}
	return Problem{Severity: Error, Pos: Position{File: name, Line: line, Column: 1},
		Message: "invalid YAML: " + msg, Hint: "check indentation and quoting on that line"}
}

// walker checks a YAML node tree against the Go types: unknown fields,
// wrong kinds, scalars that do not parse. It records every field's position.
type walker struct {
	file     string
	pos      map[string]Position
	problems Problems
	// nodes counts visited nodes: aliases can make a small file expand
	// exponentially ("billion laughs"), so the walk stops at maxNodes.
	nodes int
}

// maxNodes bounds the values a stack file may expand to; real files have
// a few hundred.
const maxNodes = 100_000

func (w *walker) at(n *yaml.Node) Position {
	return Position{File: w.file, Line: n.Line, Column: n.Column}
}

func (w *walker) add(n *yaml.Node, path, msg, hint string) {
	w.problems = append(w.problems, Problem{Severity: Error, Pos: w.at(n), Path: path, Message: msg, Hint: hint})
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	w.nodes++
	if w.nodes == maxNodes {
		w.add(n, path, fmt.Sprintf("the file expands to more than %d values", maxNodes),
			"use fewer aliases (*name): each one copies the anchored value")
	}
	if w.nodes >= maxNodes {
		return
	}
	if path != "" {
		if _, seen := w.pos[path]; !seen {
			w.pos[path] = w.at(n)
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		v := reflect.New(t)
		if err := v.Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			w.add(n, path, err.Error(), unmarshalHint(t))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.add(n, path, fmt.Sprintf("expected a mapping (key: value lines), found %s", kindName(n)),
				"write the fields on indented lines below the key, or as {key: value, ...}")
			return
		}
		fields := yamlFields(t)
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			if seen[k.Value] {
				w.add(k, sub, fmt.Sprintf("%q is set twice", k.Value), "remove one of them")
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				w.pos[sub] = w.at(k)
				where := "here"
				if path != "" {
					where = "in " + path
				}
				hint := didYouMean(k.Value, names, "field")
				if suggest.Closest(k.Value, names) == "" {
					hint = "remove it; the fields allowed " + where + " are: " + strings.Join(names, ", ")
				}
				w.add(k, sub, fmt.Sprintf("unknown field %q", k.Value), hint)
				continue
			}
			w.walk(v, ft, sub) // records the value's position
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.add(n, path, fmt.Sprintf("expected a list, found %s", kindName(n)), "write it as a list: [a, b] or lines starting with '- '")
			return
		}
		for i, c := range n.Content {
			w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.add(n, path, fmt.Sprintf("expected a mapping, found %s", kindName(n)), "write NAME: value pairs on indented lines below the key")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			w.pos[sub] = w.at(k)
			w.walk(v, t.Elem(), sub)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, fmt.Sprintf("expected text, found %s", kindName(n)), "write a single value, quoted if it contains ':' or starts with '{' or '['")
		}
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, fmt.Sprintf("expected a whole number, found %s", kindName(n)), "write a number without quotes or units, e.g. 30")
		} else if _, err := strconv.ParseInt(n.Value, 0, 64); err != nil {
			w.add(n, path, fmt.Sprintf("expected a whole number, found %q", n.Value), "write a number without quotes or units, e.g. 30")
		}
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, fmt.Sprintf("expected a number, found %s", kindName(n)), "write a number without quotes, e.g. 50 or 0.5")
		} else if _, err := strconv.ParseFloat(n.Value, 64); err != nil {
			w.add(n, path, fmt.Sprintf("expected a number, found %q", n.Value), "write a number without quotes, e.g. 50 or 0.5")
		}
	case reflect.Bool:
		if _, ok := yamlBools[n.Value]; n.Kind != yaml.ScalarNode || !ok {
			w.add(n, path, fmt.Sprintf("expected true or false, found %s", kindName(n)), "write true or false")
		}
	}
}

// unmarshalHint says how to write a value of a type with its own YAML form.
func unmarshalHint(t reflect.Type) string {
	if t == reflect.TypeOf(PortRange{}) {
		return "write a port like 80 or a range like 8000-8010"
	}
	return "see moat schema for the accepted forms"
}

// yamlBools are the spellings of booleans in YAML 1.2 (the yaml package's).
var yamlBools = map[string]bool{"true": true, "True": true, "TRUE": true, "false": false, "False": false, "FALSE": false}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps YAML keys to field types for a struct type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}
