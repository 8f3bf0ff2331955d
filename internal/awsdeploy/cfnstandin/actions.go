// The CloudFormation actions: stacks, change sets, events, resources.

package cfnstandin

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

func (s *Server) describeStacks(w http.ResponseWriter, f url.Values) {
	name := f.Get("StackName")
	var out []*stack
	if name == "" {
		for _, st := range s.stacks {
			if st.status != "DELETE_COMPLETE" {
				out = append(out, st)
			}
		}
	} else if st := s.live(name); st != nil {
		out = append(out, st)
	} else {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack with id %s does not exist", name))
		return
	}
	var b strings.Builder
	b.WriteString("<Stacks>")
	for _, st := range out {
		fmt.Fprintf(&b, "<member><StackId>%s</StackId><StackName>%s</StackName><CreationTime>%s</CreationTime><StackStatus>%s</StackStatus>",
			esc(st.id), esc(st.name), ts(st.created), st.status)
		if st.reason != "" {
			fmt.Fprintf(&b, "<StackStatusReason>%s</StackStatusReason>", esc(st.reason))
		}
		b.WriteString("<Capabilities>")
		for _, c := range st.capabilities {
			fmt.Fprintf(&b, "<member>%s</member>", c)
		}
		b.WriteString("</Capabilities><Parameters>")
		for _, k := range sortedKeys(st.params) {
			fmt.Fprintf(&b, "<member><ParameterKey>%s</ParameterKey><ParameterValue>%s</ParameterValue></member>", esc(k), esc(st.params[k]))
		}
		b.WriteString("</Parameters><Outputs>")
		for _, o := range st.outputs {
			fmt.Fprintf(&b, "<member><OutputKey>%s</OutputKey><OutputValue>%s</OutputValue><Description>%s</Description></member>", esc(o[0]), esc(o[1]), esc(o[2]))
		}
		b.WriteString("</Outputs></member>")
	}
	b.WriteString("</Stacks>")
	writeXML(w, cfnNS, "DescribeStacks", b.String())
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (s *Server) createChangeSet(w http.ResponseWriter, f url.Values) {
	name, csName, typ := f.Get("StackName"), f.Get("ChangeSetName"), f.Get("ChangeSetType")
	if typ == "" {
		typ = "UPDATE"
	}
	if name == "" || csName == "" {
		writeErr(w, 400, cfnNS, "ValidationError", "StackName and ChangeSetName are required")
		return
	}
	body := []byte(f.Get("TemplateBody"))
	if u := f.Get("TemplateURL"); u != "" {
		obj, err := s.templateURL(u)
		if err != nil {
			writeErr(w, 400, cfnNS, "ValidationError", err.Error())
			return
		}
		body = obj
	} else if len(body) > MaxTemplateBody {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("1 validation error detected: Value at 'templateBody' failed to satisfy constraint: Member must have length less than or equal to %d", MaxTemplateBody))
		return
	}
	tmpl, err := parseTemplate(body)
	if err != nil {
		writeErr(w, 400, cfnNS, "ValidationError", "Template format error: "+err.Error())
		return
	}
	caps := list(f, "Capabilities")
	if need := tmpl.capability(); need != "" && !slices.Contains(caps, need) && !slices.Contains(caps, "CAPABILITY_NAMED_IAM") {
		writeErr(w, 400, cfnNS, "InsufficientCapabilitiesException", fmt.Sprintf("Requires capabilities : [%s]", need))
		return
	}
	params := map[string]string{}
	var previous []string // UsePreviousValue: the stack's current value
	for i := 1; ; i++ {
		k, ok := f[fmt.Sprintf("Parameters.member.%d.ParameterKey", i)]
		if !ok {
			break
		}
		params[k[0]] = f.Get(fmt.Sprintf("Parameters.member.%d.ParameterValue", i))
		if f.Get(fmt.Sprintf("Parameters.member.%d.UsePreviousValue", i)) == "true" {
			previous = append(previous, k[0])
		}
	}
	for k := range params {
		if _, ok := tmpl.params[k]; !ok {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Parameters: [%s] do not exist in the template", k))
			return
		}
	}
	for _, k := range sortedKeys(tmpl.params) {
		if _, ok := params[k]; !ok {
			if !tmpl.params[k].hasDefault {
				writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Parameters: [%s] must have values", k))
				return
			}
			params[k] = tmpl.params[k].def
		}
	}
	st := s.live(name)
	for _, k := range previous {
		v, ok := "", false
		if st != nil && typ == "UPDATE" {
			v, ok = st.params[k]
		}
		if !ok {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Invalid input for parameter key %s. Cannot specify usePreviousValue as true for a parameter key not in the previous template", k))
			return
		}
		params[k] = v
	}
	switch typ {
	case "CREATE":
		if st != nil && st.status != "REVIEW_IN_PROGRESS" {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack [%s] already exists and cannot be created again with the changeSet [%s].", name, csName))
			return
		}
		if st == nil {
			s.seq++
			st = &stack{name: name, id: fmt.Sprintf("arn:aws:cloudformation:us-east-1:%s:stack/%s/standin-%d", Account, name, s.seq),
				created: s.now(), physical: map[string]string{}}
			s.stacks = append(s.stacks, st)
			s.setStatus(st, "REVIEW_IN_PROGRESS", "User Initiated")
		}
	case "UPDATE":
		if st == nil || st.status == "REVIEW_IN_PROGRESS" {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack [%s] does not exist", name))
			return
		}
	default:
		writeErr(w, 400, cfnNS, "ValidationError", "ChangeSetType must be CREATE or UPDATE in the stand-in, not "+typ)
		return
	}
	for _, cs := range st.changeSets {
		if cs.name == csName {
			writeErr(w, 400, cfnNS, "AlreadyExistsException", fmt.Sprintf("ChangeSet %s already exists", csName))
			return
		}
	}
	s.seq++
	cs := &changeSet{name: csName, typ: typ, status: "CREATE_PENDING", exec: "UNAVAILABLE", tmpl: tmpl, params: params, caps: caps,
		id: fmt.Sprintf("arn:aws:cloudformation:us-east-1:%s:changeSet/%s/standin-%d", Account, csName, s.seq)}
	cs.changes = diff(st.tmpl, st.params, tmpl, params)
	cs.other = st.tmpl != nil && (!reflect.DeepEqual(st.tmpl.outputs, tmpl.outputs) || !reflect.DeepEqual(st.params, params))
	st.changeSets = append(st.changeSets, cs)
	writeXML(w, cfnNS, "CreateChangeSet", fmt.Sprintf("<Id>%s</Id><StackId>%s</StackId>", esc(cs.id), esc(st.id)))
}

// templateURL resolves an S3 URL to an object the stand-in holds.
func (s *Server) templateURL(raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("TemplateURL must be a supported URL: %v", err)
	}
	var bucket, key string
	path := strings.TrimPrefix(u.Path, "/")
	if host := u.Hostname(); strings.Contains(host, ".s3.") || strings.Contains(host, ".s3-") {
		bucket, key = host[:strings.Index(host, ".s3")], path
	} else {
		bucket, key, _ = strings.Cut(path, "/")
	}
	b, ok := s.objects[bucket+"/"+key]
	if !ok {
		return nil, fmt.Errorf("S3 error: Access Denied (no object %s/%s in the stand-in)", bucket, key)
	}
	return b, nil
}

func (s *Server) findChangeSet(f url.Values) (*stack, *changeSet) {
	name := f.Get("ChangeSetName")
	for _, st := range s.stacks {
		for _, cs := range st.changeSets {
			if cs.id == name || (cs.name == name && (st.name == f.Get("StackName") || st.id == f.Get("StackName")) && st.status != "DELETE_COMPLETE") {
				return st, cs
			}
		}
	}
	return nil, nil
}

func (s *Server) describeChangeSet(w http.ResponseWriter, f url.Values) {
	st, cs := s.findChangeSet(f)
	if cs == nil {
		writeErr(w, 404, cfnNS, "ChangeSetNotFound", fmt.Sprintf("ChangeSet [%s] does not exist", f.Get("ChangeSetName")))
		return
	}
	cs.describes++
	switch {
	case cs.status == "CREATE_PENDING":
		cs.status = "CREATE_IN_PROGRESS"
	case cs.status == "CREATE_IN_PROGRESS" && cs.describes >= 2:
		if len(cs.changes) == 0 && !cs.other {
			cs.status, cs.exec = "FAILED", "UNAVAILABLE"
			cs.reason = "The submitted information didn't contain changes. Submit different information to create a change set."
		} else {
			cs.status, cs.exec = "CREATE_COMPLETE", "AVAILABLE"
		}
	}
	// Page the changes two at a time, to exercise NextToken.
	start, _ := strconv.Atoi(f.Get("NextToken"))
	end := min(start+2, len(cs.changes))
	var b strings.Builder
	fmt.Fprintf(&b, "<ChangeSetId>%s</ChangeSetId><ChangeSetName>%s</ChangeSetName><StackId>%s</StackId><StackName>%s</StackName><Status>%s</Status><ExecutionStatus>%s</ExecutionStatus>",
		esc(cs.id), esc(cs.name), esc(st.id), esc(st.name), cs.status, cs.exec)
	if cs.reason != "" {
		fmt.Fprintf(&b, "<StatusReason>%s</StatusReason>", esc(cs.reason))
	}
	if cs.status == "CREATE_COMPLETE" {
		b.WriteString("<Changes>")
		for _, c := range cs.changes[start:end] {
			fmt.Fprintf(&b, "<member><Type>Resource</Type><ResourceChange><Action>%s</Action><LogicalResourceId>%s</LogicalResourceId><ResourceType>%s</ResourceType>", c.action, esc(c.logical), esc(c.typ))
			if p := st.physical[c.logical]; p != "" {
				fmt.Fprintf(&b, "<PhysicalResourceId>%s</PhysicalResourceId>", esc(p))
			}
			if c.replacement != "" {
				fmt.Fprintf(&b, "<Replacement>%s</Replacement>", c.replacement)
			}
			b.WriteString("</ResourceChange></member>")
		}
		b.WriteString("</Changes>")
		if end < len(cs.changes) {
			fmt.Fprintf(&b, "<NextToken>%d</NextToken>", end)
		}
	}
	writeXML(w, cfnNS, "DescribeChangeSet", b.String())
}

func (s *Server) deleteChangeSet(w http.ResponseWriter, f url.Values) {
	st, cs := s.findChangeSet(f)
	if cs == nil {
		writeErr(w, 404, cfnNS, "ChangeSetNotFound", fmt.Sprintf("ChangeSet [%s] does not exist", f.Get("ChangeSetName")))
		return
	}
	st.changeSets = slices.DeleteFunc(st.changeSets, func(c *changeSet) bool { return c == cs })
	writeXML(w, cfnNS, "DeleteChangeSet", "")
}

func (s *Server) executeChangeSet(w http.ResponseWriter, f url.Values) {
	st, cs := s.findChangeSet(f)
	if cs == nil {
		writeErr(w, 404, cfnNS, "ChangeSetNotFound", fmt.Sprintf("ChangeSet [%s] does not exist", f.Get("ChangeSetName")))
		return
	}
	if cs.exec != "AVAILABLE" {
		writeErr(w, 400, cfnNS, "InvalidChangeSetStatus", fmt.Sprintf("ChangeSet [%s] cannot be executed in its current status of [%s]", cs.id, cs.status))
		return
	}
	if len(st.pending) > 0 {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack:%s is in %s state and can not be updated.", st.id, st.status))
		return
	}
	// Executing a change set removes every change set of the stack.
	st.changeSets = nil
	st.capabilities = cs.caps
	if cs.typ == "CREATE" {
		s.planCreate(st, cs)
	} else {
		s.planUpdate(st, cs)
	}
	// The first step happens at once.
	s.stepNow(st)
	writeXML(w, cfnNS, "ExecuteChangeSet", "")
}

func (s *Server) deleteStack(w http.ResponseWriter, f url.Values) {
	st := s.live(f.Get("StackName"))
	// Deleting a stack that does not exist succeeds, as on AWS.
	if st != nil && st.status != "DELETE_COMPLETE" && st.status != "DELETE_IN_PROGRESS" {
		if len(st.pending) > 0 {
			writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack [%s] cannot be deleted while in status %s", st.name, st.status))
			return
		}
		add := func(f func()) { st.pending = append(st.pending, f) }
		add(func() { s.setStatus(st, "DELETE_IN_PROGRESS", "User Initiated") })
		var order []string
		if st.tmpl != nil {
			order = st.tmpl.order
		}
		for j := len(order) - 1; j >= 0; j-- {
			id := order[j]
			if _, ok := st.physical[id]; !ok {
				continue
			}
			typ := st.tmpl.resources[id].typ
			add(func() { s.emit(st, id, typ, "DELETE_IN_PROGRESS", "") })
			add(func() { s.emit(st, id, typ, "DELETE_COMPLETE", ""); delete(st.physical, id) })
		}
		add(func() {
			st.outputs = nil
			s.setStatus(st, "DELETE_COMPLETE", "")
		})
		s.stepNow(st)
		if len(st.physical) == 0 {
			// Nothing to delete (a stack still in review): done at once.
			for len(st.pending) > 0 {
				s.stepNow(st)
			}
		}
	}
	writeXML(w, cfnNS, "DeleteStack", "")
}

func (s *Server) describeStackEvents(w http.ResponseWriter, f url.Values) {
	st := s.live(f.Get("StackName"))
	if st == nil {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack [%s] does not exist", f.Get("StackName")))
		return
	}
	start, _ := strconv.Atoi(f.Get("NextToken"))
	var b strings.Builder
	b.WriteString("<StackEvents>")
	n := 0
	i := len(st.events) - 1 - start
	for ; i >= 0 && n < s.PageSize; i, n = i-1, n+1 {
		e := st.events[i]
		fmt.Fprintf(&b, "<member><EventId>%s</EventId><StackId>%s</StackId><StackName>%s</StackName><LogicalResourceId>%s</LogicalResourceId><PhysicalResourceId>%s</PhysicalResourceId><ResourceType>%s</ResourceType><Timestamp>%s</Timestamp><ResourceStatus>%s</ResourceStatus>",
			esc(e.id), esc(st.id), esc(st.name), esc(e.logical), esc(e.physical), esc(e.typ), ts(e.at), e.status)
		if e.reason != "" {
			fmt.Fprintf(&b, "<ResourceStatusReason>%s</ResourceStatusReason>", esc(e.reason))
		}
		b.WriteString("</member>")
	}
	b.WriteString("</StackEvents>")
	if i >= 0 {
		fmt.Fprintf(&b, "<NextToken>%d</NextToken>", start+n)
	}
	writeXML(w, cfnNS, "DescribeStackEvents", b.String())
}

func (s *Server) listStackResources(w http.ResponseWriter, f url.Values) {
	st := s.live(f.Get("StackName"))
	if st == nil {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack with id %s does not exist", f.Get("StackName")))
		return
	}
	var b strings.Builder
	b.WriteString("<StackResourceSummaries>")
	if st.tmpl != nil {
		for _, id := range st.tmpl.order {
			phys, ok := st.physical[id]
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "<member><LogicalResourceId>%s</LogicalResourceId><PhysicalResourceId>%s</PhysicalResourceId><ResourceType>%s</ResourceType><ResourceStatus>%s</ResourceStatus><LastUpdatedTimestamp>%s</LastUpdatedTimestamp></member>",
				esc(id), esc(phys), esc(st.tmpl.resources[id].typ), "CREATE_COMPLETE", ts(s.clock))
		}
	}
	b.WriteString("</StackResourceSummaries>")
	writeXML(w, cfnNS, "ListStackResources", b.String())
}

// getTemplateSummary answers for a deployed stack (StackName): its
// template's parameters with their descriptions.
func (s *Server) getTemplateSummary(w http.ResponseWriter, f url.Values) {
	st := s.live(f.Get("StackName"))
	if st == nil || st.tmpl == nil {
		writeErr(w, 400, cfnNS, "ValidationError", fmt.Sprintf("Stack with id %s does not exist", f.Get("StackName")))
		return
	}
	var b strings.Builder
	b.WriteString("<Parameters>")
	for _, k := range sortedKeys(st.tmpl.params) {
		p := st.tmpl.params[k]
		fmt.Fprintf(&b, "<member><ParameterKey>%s</ParameterKey><Description>%s</Description>", esc(k), esc(p.desc))
		if p.hasDefault {
			fmt.Fprintf(&b, "<DefaultValue>%s</DefaultValue>", esc(p.def))
		}
		b.WriteString("</member>")
	}
	b.WriteString("</Parameters>")
	writeXML(w, cfnNS, "GetTemplateSummary", b.String())
}
