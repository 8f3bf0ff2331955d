package fis

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moat-dev/moat/internal/spec"
	"github.com/moat-dev/moat/internal/suggest"
)

// checker collects problems with their positions.
type checker struct {
	f        *File
	problems Problems
}

func (c *checker) add(sev spec.Severity, path, msg, hint string) {
	c.problems = append(c.problems, spec.Problem{Severity: sev, Pos: c.f.Pos(path), Path: path, Message: msg, Hint: hint})
}

func (c *checker) errorf(path, hint, format string, args ...any) {
	c.add(spec.Error, path, fmt.Sprintf(format, args...), hint)
}

// didYouMean hints at the closest candidate, or lists them.
func didYouMean(s string, candidates []string, what string) string {
	if c := suggest.Closest(s, candidates); c != "" {
		return fmt.Sprintf("did you mean %q?", c)
	}
	if len(candidates) == 0 {
		return fmt.Sprintf("define a %s first", what)
	}
	return "use one of: " + strings.Join(candidates, ", ")
}

// Validate checks a template against what AWS FIS accepts and what moat
// runs locally. Problems come back sorted by position; warnings do not
// stop a run.
func Validate(f *File) Problems {
	c := &checker{f: f}
	t := f.Template
	if len(t.Actions) == 0 {
		c.errorf("actions", `add an action, e.g. "actions": {"wait": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}}}`,
			"the template has no actions")
	}
	if len(t.StopConditions) == 0 {
		c.errorf("stopConditions", `add "stopConditions": [{"source": "none"}], or an alarm (see docs/chaos.md)`,
			"stopConditions is missing: AWS FIS requires at least one (source none for none)")
	}
	if t.RoleArn == "" {
		c.add(spec.Warning, "roleArn", "roleArn is missing: AWS FIS requires the role it acts with (moat does not need one locally)",
			"set roleArn to the role's ARN, or list the experiment in the stack file: moat template renders the role")
	}
	for i, s := range t.StopConditions {
		c.stopCondition(fmt.Sprintf("stopConditions[%d]", i), s)
	}
	if o := t.ExperimentOptions; o != nil {
		if o.EmptyTargetResolutionMode != "" && o.EmptyTargetResolutionMode != "fail" && o.EmptyTargetResolutionMode != "skip" {
			c.errorf("experimentOptions.emptyTargetResolutionMode", `use "fail" (the default) or "skip"`,
				"%q is not an empty target resolution mode", o.EmptyTargetResolutionMode)
		}
		switch o.AccountTargeting {
		case "", "single-account":
		case "multi-account":
			c.errorf("experimentOptions.accountTargeting", `use "single-account": a moat stack is one account`,
				"multi-account experiments do not run locally")
		default:
			c.errorf("experimentOptions.accountTargeting", `use "single-account"`, "%q is not an account targeting", o.AccountTargeting)
		}
		if o.ActionsMode != "" && o.ActionsMode != "run-all" && o.ActionsMode != "skip-all" {
			c.errorf("experimentOptions.actionsMode", `use "run-all" (the default) or "skip-all"`, "%q is not an actions mode", o.ActionsMode)
		}
	}
	used := map[string]bool{}
	for _, name := range f.TargetNames() {
		c.target("targets."+name, t.Targets[name])
	}
	names := f.ActionNames()
	for _, name := range names {
		a := t.Actions[name]
		c.action("actions."+name, name, a, names)
		for _, tn := range a.Targets {
			used[tn] = true
		}
	}
	c.cycles(names)
	for _, name := range f.TargetNames() {
		if !used[name] {
			c.add(spec.Warning, "targets."+name, fmt.Sprintf("target %s is not used by any action", name), "use it in an action's targets, or remove it")
		}
	}
	spec.Problems(c.problems).Sort()
	return c.problems
}

var alarmARN = regexp.MustCompile(`^arn:aws[a-z-]*:cloudwatch:[a-z0-9-]*:[0-9]*:alarm:(.+)$`)

func (c *checker) stopCondition(path string, s StopCondition) {
	switch s.Source {
	case "none":
		if s.Value != "" {
			c.errorf(path+".value", "remove value, or use source aws:cloudwatch:alarm", "a stop condition with source none takes no value")
		}
	case "aws:cloudwatch:alarm":
		m := alarmARN.FindStringSubmatch(s.Value)
		if m == nil {
			c.errorf(path+".value", `write the alarm's ARN: "arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME"`, "%q is not a CloudWatch alarm ARN", s.Value)
			return
		}
		if _, err := ParseAlarm(m[1]); err != nil {
			c.add(spec.Warning, path+".value", fmt.Sprintf("alarm %q is not a moat alarm expression (%v): locally it needs --alarm '%s=EXPR'", m[1], err, m[1]),
				"name the alarm by what it watches, e.g. \"healthy-hosts(web) < 1\" or \"5xx-ratio(web) > 0.01 for 30s\" (docs/chaos.md)")
		}
	case "":
		c.errorf(path+".source", `set "source": "none" or "aws:cloudwatch:alarm"`, "a stop condition needs a source")
	default:
		c.errorf(path+".source", didYouMean(s.Source, []string{"none", "aws:cloudwatch:alarm"}, "source"), "%q is not a stop condition source", s.Source)
	}
}

var (
	countMode   = regexp.MustCompile(`^COUNT\(([0-9]+)\)$`)
	percentMode = regexp.MustCompile(`^PERCENT\(([0-9]+)\)$`)
)

// ParseSelectionMode reads ALL, COUNT(n) or PERCENT(n): kind is "ALL",
// "COUNT" or "PERCENT".
func ParseSelectionMode(s string) (kind string, n int, err error) {
	if s == "ALL" {
		return "ALL", 0, nil
	}
	if m := countMode.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return "", 0, fmt.Errorf("COUNT takes a whole number of at least 1")
		}
		return "COUNT", n, nil
	}
	if m := percentMode.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 || n > 100 {
			return "", 0, fmt.Errorf("PERCENT takes a whole number from 1 to 100")
		}
		return "PERCENT", n, nil
	}
	return "", 0, fmt.Errorf("%q is not ALL, COUNT(n) or PERCENT(n)", s)
}

func (c *checker) target(path string, t Target) {
	types := mapKeys(resourceTypes)
	paths, ok := resourceTypes[t.ResourceType]
	switch {
	case t.ResourceType == "":
		c.errorf(path+".resourceType", "use one of: "+strings.Join(types, ", "), "resourceType is missing")
	case !ok:
		c.errorf(path+".resourceType", didYouMean(t.ResourceType, types, "resource type moat run"), "moat chaos does not target %q", t.ResourceType)
	}
	switch {
	case len(t.ResourceArns) == 0 && len(t.ResourceTags) == 0:
		c.errorf(path, `add "resourceTags": {"KEY": "VALUE"} or "resourceArns": [...]`, "the target names no resources: it needs resourceTags or resourceArns")
	case len(t.ResourceArns) > 0 && len(t.ResourceTags) > 0:
		c.errorf(path+".resourceArns", "keep one of resourceArns and resourceTags (filters narrow either)", "a target takes resourceArns or resourceTags, not both")
	}
	for i, a := range t.ResourceArns {
		if _, typ, err := ParseARN(a); err != nil {
			c.errorf(fmt.Sprintf("%s.resourceArns[%d]", path, i), "write an ARN such as arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0", "%v", err)
		} else if ok && typ != t.ResourceType {
			c.errorf(fmt.Sprintf("%s.resourceArns[%d]", path, i), "list only resources of the target's resourceType", "%s is an ARN of %s, not %s", a, typ, t.ResourceType)
		}
	}
	for i, f := range t.Filters {
		fp := fmt.Sprintf("%s.filters[%d]", path, i)
		if ok && !slices.Contains(paths, f.Path) {
			c.errorf(fp+".path", didYouMean(f.Path, paths, "filter path"), "moat does not filter %s by %q", t.ResourceType, f.Path)
		}
		if len(f.Values) == 0 {
			c.errorf(fp+".values", `add the values to match, e.g. "values": ["running"]`, "a filter needs values")
		}
	}
	if t.SelectionMode == "" {
		c.errorf(path+".selectionMode", `add "selectionMode": "ALL" (or "COUNT(1)", "PERCENT(50)")`, "selectionMode is missing")
	} else if _, _, err := ParseSelectionMode(t.SelectionMode); err != nil {
		c.errorf(path+".selectionMode", `write "ALL", "COUNT(n)" or "PERCENT(n)"`, "%v", err)
	}
	for _, k := range mapKeys(t.Parameters) {
		c.errorf(path+".parameters."+k, "remove it: narrow the target with filters instead", "moat takes no target parameters for %s", t.ResourceType)
	}
}

func (c *checker) action(path, name string, a Action, names []string) {
	sp, ok := actions[a.ActionID]
	switch {
	case a.ActionID == "":
		c.errorf(path+".actionId", "use one of: "+strings.Join(mapKeys(actions), ", "), "actionId is missing")
		return
	case !ok && slices.Contains(otherActions, a.ActionID):
		c.errorf(path+".actionId", "moat runs: "+strings.Join(mapKeys(actions), ", "), "%s is an AWS FIS action that moat chaos does not run locally", a.ActionID)
		return
	case !ok:
		c.errorf(path+".actionId", didYouMean(a.ActionID, mapKeys(actions), "action"), "%q is not an AWS FIS action moat runs", a.ActionID)
		return
	}
	c.params(path+".parameters", a.Parameters, sp.params, "parameter of "+a.ActionID)
	if a.ActionID == ActionSendCommand {
		c.document(path+".parameters", a.Parameters)
	}
	if sp.targetKey == "" {
		for _, k := range mapKeys(a.Targets) {
			c.errorf(path+".targets."+k, "remove it", "%s takes no targets", a.ActionID)
		}
	} else {
		tn, ok := a.Targets[sp.targetKey]
		for _, k := range mapKeys(a.Targets) {
			if k != sp.targetKey {
				c.errorf(path+".targets."+k, fmt.Sprintf("%s's target key is %s", a.ActionID, sp.targetKey), "%s does not take targets %q", a.ActionID, k)
			}
		}
		switch {
		case !ok:
			c.errorf(path+".targets", fmt.Sprintf(`add "targets": {"%s": "TARGET"}`, sp.targetKey), "%s needs targets.%s", a.ActionID, sp.targetKey)
		default:
			t, found := c.f.Template.Targets[tn]
			if !found {
				c.errorf(path+".targets."+sp.targetKey, didYouMean(tn, c.f.TargetNames(), "target"), "no target named %q", tn)
			} else if t.ResourceType != sp.resourceType && t.ResourceType != "" {
				c.errorf(path+".targets."+sp.targetKey, fmt.Sprintf("point it at a target of resourceType %s", sp.resourceType),
					"target %s is of %s; %s acts on %s", tn, t.ResourceType, a.ActionID, sp.resourceType)
			}
		}
	}
	for i, s := range a.StartAfter {
		sp := fmt.Sprintf("%s.startAfter[%d]", path, i)
		switch {
		case s == name:
			c.errorf(sp, "remove it", "action %s cannot start after itself", name)
		case !slices.Contains(names, s):
			c.errorf(sp, didYouMean(s, names, "action"), "no action named %q", s)
		}
	}
}

func (c *checker) params(path string, got map[string]string, want map[string]param, what string) {
	known := mapKeys(want)
	for _, k := range mapKeys(got) {
		p, ok := want[k]
		if !ok {
			hint := didYouMean(k, known, what)
			if len(known) == 0 {
				hint = "remove it"
			}
			c.errorf(path+"."+k, hint, "unknown %s: %q", what, k)
			continue
		}
		if p.check != nil {
			if err := p.check(got[k]); err != nil {
				c.errorf(path+"."+k, p.hint, "%v", err)
			}
		}
	}
	for _, k := range known {
		if _, ok := got[k]; !ok && want[k].required {
			c.errorf(path, fmt.Sprintf("add %q: %s", k, want[k].hint), "%s needs %s", strings.TrimPrefix(what, "parameter of "), k)
		}
	}
}

func (c *checker) document(path string, params map[string]string) {
	doc, ok := documents[documentName(params["documentArn"])]
	if !ok {
		return // reported by the documentArn check
	}
	dp, err := documentParams(params["documentParameters"])
	if err != nil {
		return // reported by the documentParameters check
	}
	c.params(path+".documentParameters", dp, doc.params, "parameter of document "+documentName(params["documentArn"]))
}

// cycles reports startAfter loops, once each.
func (c *checker) cycles(names []string) {
	state := map[string]int{} // 0 unseen, 1 on the stack, 2 done
	var stack []string
	reported := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		state[n] = 1
		stack = append(stack, n)
		for _, d := range c.f.Template.Actions[n].StartAfter {
			if _, ok := c.f.Template.Actions[d]; !ok || d == n {
				continue
			}
			switch state[d] {
			case 0:
				visit(d)
			case 1:
				i := slices.Index(stack, d)
				loop := append(slices.Clone(stack[i:]), d)
				if !reported[d] {
					reported[d] = true
					c.errorf("actions."+d+".startAfter", "remove one of the startAfter entries of the loop",
						"startAfter goes round in a loop: %s", strings.Join(loop, " -> "))
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
	}
	for _, n := range names {
		if state[n] == 0 {
			visit(n)
		}
	}
}
