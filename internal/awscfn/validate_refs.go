package awscfn

// Reference rules: every Ref, Fn::GetAtt, Fn::Sub variable and DependsOn
// resolves, and resources form no dependency cycle.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ref is one reference from a resource (or output) to another.
type reference struct {
	from, path string
	to         string
	attr       string // GetAtt attribute, or "" for Ref
	dependsOn  bool
}

// refs collects every Ref, Fn::GetAtt and Fn::Sub variable in v.
func refs(from, path string, v any, out *[]reference) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, a := range x {
				switch k {
				case "Ref":
					if s, ok := a.(string); ok {
						*out = append(*out, reference{from: from, path: path, to: s})
						return
					}
				case "Fn::GetAtt":
					id, attr := getAttArgs(a)
					if id != "" {
						*out = append(*out, reference{from: from, path: path, to: id, attr: attr})
						refs(from, path+".Fn::GetAtt", a, out)
						return
					}
				case "Fn::Sub":
					var str string
					locals := map[string]bool{}
					switch s := a.(type) {
					case string:
						str = s
					case []any:
						if len(s) == 2 {
							str, _ = s[0].(string)
							if m, ok := s[1].(map[string]any); ok {
								for name, val := range m {
									locals[name] = true
									refs(from, path+".Fn::Sub."+name, val, out)
								}
							}
						}
					}
					for _, name := range subVars(str) {
						if locals[name] {
							continue
						}
						id, attr, _ := strings.Cut(name, ".")
						*out = append(*out, reference{from: from, path: path + ".Fn::Sub", to: id, attr: attr})
					}
					return
				}
			}
		}
		for _, k := range sortedKeys(x) {
			refs(from, join2(path, k), x[k], out)
		}
	case []any:
		for i, item := range x {
			refs(from, fmt.Sprintf("%s[%d]", path, i), item, out)
		}
	}
}

func getAttArgs(a any) (id, attr string) {
	switch x := a.(type) {
	case []any:
		if len(x) == 2 {
			id, _ = x[0].(string)
			attr, _ = x[1].(string)
		}
	case []string:
		if len(x) == 2 {
			id, attr = x[0], x[1]
		}
	case string:
		id, attr, _ = strings.Cut(x, ".")
	}
	return id, attr
}

var subVar = regexp.MustCompile(`\$\{([^}!][^}]*)\}`)

// subVars returns the ${Name} and ${Name.Attr} variables of a Fn::Sub
// string; ${!Literal} is not a variable.
func subVars(s string) []string {
	var out []string
	for _, m := range subVar.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// allRefs returns every reference in the template, DependsOn included.
func (v *validator) allRefs() []reference {
	var out []reference
	for _, r := range v.t.Resources {
		refs(r.ID, r.ID+".Properties", map[string]any(r.Properties), &out)
		for _, d := range r.DependsOn {
			out = append(out, reference{from: r.ID, path: r.ID + ".DependsOn", to: d, dependsOn: true})
		}
	}
	for _, o := range v.t.Outputs {
		refs("", "Outputs."+o.Name+".Value", o.Value, &out)
	}
	return out
}

// references checks that every Ref names a resource, parameter or pseudo
// parameter, and every GetAtt a resource attribute its schema declares.
func (v *validator) references() {
	for _, rf := range v.allRefs() {
		target, isRes := v.res[rf.to]
		switch {
		case rf.dependsOn:
			if !isRes {
				v.addf(rf.path, "DependsOn names %s, which is not a resource", rf.to)
			}
		case rf.attr == "":
			if !isRes && !v.params[rf.to] && !pseudoParameters[rf.to] {
				v.addf(rf.path, "Ref to %s, which is not a resource, parameter or pseudo parameter", rf.to)
			}
		default:
			if !isRes {
				v.addf(rf.path, "Fn::GetAtt of %s, which is not a resource", rf.to)
				continue
			}
			if s, ok := v.schemas[target.Type]; ok && !s.attrs[rf.attr] {
				v.addf(rf.path, "Fn::GetAtt %s.%s: %s has no attribute %s (has %s)", rf.to, rf.attr, target.Type, rf.attr,
					strings.Join(sortedKeys(s.attrs), ", "))
			}
		}
	}
}

// cycles finds dependency cycles between resources.
func (v *validator) cycles() {
	edges := map[string][]string{}
	for _, rf := range v.allRefs() {
		if rf.from == "" {
			continue
		}
		if _, ok := v.res[rf.to]; ok {
			edges[rf.from] = append(edges[rf.from], rf.to)
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	reported := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		color[id] = grey
		stack = append(stack, id)
		deps := append([]string(nil), edges[id]...)
		sort.Strings(deps)
		for _, d := range deps {
			switch color[d] {
			case white:
				visit(d)
			case grey:
				// The cycle is the stack from d to here.
				i := len(stack) - 1
				for i > 0 && stack[i] != d {
					i--
				}
				cyc := rotate(stack[i:])
				key := strings.Join(sortedUnique(cyc), ",")
				if !reported[key] {
					reported[key] = true
					v.addf(cyc[0], "dependency cycle: %s -> %s", strings.Join(cyc, " -> "), cyc[0])
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
	}
	for _, r := range v.t.Resources {
		if color[r.ID] == white {
			visit(r.ID)
		}
	}
}

// rotate starts a cycle at its smallest id, so it reads the same whatever
// the resource order.
func rotate(cyc []string) []string {
	m := 0
	for i, id := range cyc {
		if id < cyc[m] {
			m = i
		}
	}
	return append(append([]string(nil), cyc[m:]...), cyc[:m]...)
}

func sortedUnique(s []string) []string {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return sortedKeys(m)
}
